"""How a request reaches the engine and its answer comes back, with http.client.

One persistent HTTP/1.1 keep-alive connection for plain requests; a connection of its own for
each streamed body (an export, an archive, a pull: :class:`Streamed`) and each hijacked stream
(attach, exec: a raw socket). The engine listens on a unix socket or on TCP, maybe with TLS
(the :class:`~distrodebug.runtimes.docker.engine.endpoint.Endpoint` says which). Failures to
connect or to answer become :class:`EngineUnreachable`, error statuses :class:`APIError`.

The API version is pinned (one round trip saved per command); an engine older than the pin says
so in a 400 answer naming its maximum, and the transport then steps down to it and asks again.
:class:`Transport` holds all this; ``EngineClient`` (client.py) adds the API calls on top of
its ``_request``, ``_json``, ``_stream`` and ``_hijack``.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import re
import socket
import ssl  # http.client imports it anyway
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from distrodebug.runtimes.docker.engine.endpoint import Endpoint, TLSSettings
from distrodebug.runtimes.docker.engine.errors import EngineUnreachable, api_error, explanation_of
from distrodebug.runtimes.docker.engine.wire import query

#: The oldest API with everything we use; pinning it saves a version round trip per command.
API_VERSION = "1.41"
#: Seconds a plain request may wait for the engine between two reads.
DEFAULT_TIMEOUT = 60.0
#: Bytes read from a file body per chunk sent (http.client's 8 KiB would mean many small chunks).
_BLOCK = 1 << 20
#: Docker's answer to a client newer than the engine: "client version 1.41 is too new. Maximum
#: supported API version is 1.40".
_TOO_NEW = re.compile(r"maximum supported api version is (\d+\.\d+)", re.IGNORECASE)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout, blocksize=_BLOCK)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self._path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def _ssl_context(tls: TLSSettings) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=tls.ca)
    if not tls.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if tls.cert and tls.key:
        context.load_cert_chain(tls.cert, tls.key)
    return context


def _transport_error(exc: BaseException, endpoint: str) -> EngineUnreachable:
    if isinstance(exc, PermissionError):
        return EngineUnreachable(f"Permission denied on {endpoint}: {exc}", permission=True)
    if isinstance(exc, ssl.SSLError):
        return EngineUnreachable(f"{endpoint}: {exc}", tls=True)
    if isinstance(exc, TimeoutError):
        return EngineUnreachable(f"the engine at {endpoint} did not answer in time", timeout=True)
    return EngineUnreachable(f"{endpoint}: {exc}")


class Streamed(io.RawIOBase):
    """A streamed response body on a connection of its own, as a file; closing it closes the
    connection, so the engine stops producing whatever was not read."""

    def __init__(self, conn: http.client.HTTPConnection, response: http.client.HTTPResponse,
                 endpoint: str) -> None:
        self._conn = conn
        self._response = response
        self._endpoint = endpoint
        self.headers = response.headers

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            return int(self._response.readinto(buffer) or 0)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise _transport_error(exc, self._endpoint) from None

    def chunks(self, size: int = 1 << 20) -> Iterator[bytes]:
        """The body in pieces of at most ``size`` bytes."""
        buffer = bytearray(size)
        view = memoryview(buffer)
        while count := self.readinto(view):
            yield bytes(view[:count])

    def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(OSError):
                self._response.close()
            self._conn.close()
        super().close()


class Transport:
    """Requests to one engine and their answers: the kept connection, streams, hijacks."""

    def __init__(self, endpoint: Endpoint, version: str = API_VERSION,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        if endpoint.scheme not in ("unix", "tcp"):
            raise ValueError(f"the engine client cannot reach {endpoint.url}")
        self.endpoint = endpoint
        #: The first answer's Server header ('Docker/20.10.24 (linux)', 'Libpod/4.3.1 (linux)'):
        #: which engine answers, known without asking /version.
        self.server = ""
        self.api_version = version
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        # One request at a time on the kept connection; a call made while it is busy (another
        # thread, a signal handler's resize) gets a connection of its own.
        self._busy = threading.Lock()
        self._ssl: ssl.SSLContext | None = None

    def _new_connection(self, timeout: float | None) -> http.client.HTTPConnection:
        ep = self.endpoint
        if ep.scheme == "unix":
            return _UnixConnection(ep.path, timeout or self.timeout)
        if ep.tls is None:
            return http.client.HTTPConnection(ep.host, ep.port, timeout=timeout or self.timeout,
                                              blocksize=_BLOCK)
        if self._ssl is None:
            self._ssl = _ssl_context(ep.tls)
        return http.client.HTTPSConnection(ep.host, ep.port, timeout=timeout or self.timeout,
                                           context=self._ssl, blocksize=_BLOCK)

    def _path(self, path: str, params: Mapping[str, Any] | None, versioned: bool) -> str:
        prefix = f"/v{self.api_version}" if versioned else ""
        return f"{prefix}{path}{query(params)}"

    def close(self) -> None:
        """Close the kept connection (the next request opens another)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _send(self, conn: http.client.HTTPConnection, method: str, url: str, body: Any,
              headers: Mapping[str, str], timeout: float | None) -> http.client.HTTPResponse:
        if conn.sock is None:
            conn.connect()
        assert conn.sock is not None
        conn.sock.settimeout(timeout or self.timeout)
        conn.request(method, url, body=body, headers={"Host": "docker", **headers})
        return conn.getresponse()

    def _exchange(self, method: str, url: str, body: Any, headers: Mapping[str, str],
                  timeout: float | None) -> tuple[int, str, http.client.HTTPMessage, bytes]:
        """One request and its whole answer, on the kept connection when it is free."""
        kept = self._busy.acquire(blocking=False)
        try:
            conn = self._conn if kept and self._conn is not None else self._new_connection(timeout)
            reused = conn.sock is not None
            try:
                try:
                    response = self._send(conn, method, url, body, headers, timeout)
                except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                    # The engine closed the idle kept connection; it saw no request: ask again.
                    if not reused or not isinstance(body, bytes | None):
                        raise
                    conn.close()
                    response = self._send(conn, method, url, body, headers, timeout)
                data = response.read()
                if not self.server:
                    self.server = str(response.headers.get("Server") or "")
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise _transport_error(exc, self.endpoint.url) from None
            except BaseException:
                # Ctrl-C mid-answer: the rest of it would be read as the next answer. The engine
                # drops what it was doing for a closed connection; the next request reconnects.
                conn.close()
                raise
            if response.will_close or not kept:
                conn.close()
            elif kept:
                self._conn = conn
            return response.status, response.reason, response.headers, data
        finally:
            if kept:
                self._busy.release()

    def _request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                 body: Any = None, json_body: Any = None, headers: Mapping[str, str] | None = None,
                 timeout: float | None = None, versioned: bool = True,
                 ok: tuple[int, ...] = ()) -> tuple[int, http.client.HTTPMessage, bytes]:
        """The answer's status, headers and body; APIError (NotFound) for an error status."""
        sent = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body).encode()
            sent["Content-Type"] = "application/json"
        while True:
            url = self._path(path, params, versioned)
            status, reason, answer_headers, data = self._exchange(method, url, body, sent, timeout)
            if status < 400 or status in ok:
                return status, answer_headers, data
            text = explanation_of(status, reason, data)
            if not (status == 400 and versioned and self._step_down(text)):
                raise api_error(status, text)

    def _step_down(self, explanation: str) -> bool:
        """Use the engine's maximum API version when it says ours is too new; True if changed."""
        found = _TOO_NEW.search(explanation)
        if not found or _version_key(found.group(1)) >= _version_key(self.api_version):
            return False
        self.api_version = found.group(1)
        return True

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        _, _, data = self._request(method, path, **kwargs)
        return json.loads(data) if data.strip() else None

    def _stream(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                body: Any = None, headers: Mapping[str, str] | None = None,
                timeout: float | None = None) -> Streamed:
        """A streamed answer on a connection of its own (closed with the Streamed)."""
        while True:
            conn = self._new_connection(timeout)
            url = self._path(path, params, True)
            try:
                response = self._send(conn, method, url, body, dict(headers or {}), timeout)
                if response.status < 400:
                    return Streamed(conn, response, self.endpoint.url)
                data = response.read()
                if not self.server:
                    self.server = str(response.headers.get("Server") or "")
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise _transport_error(exc, self.endpoint.url) from None
            except BaseException:
                conn.close()
                raise
            conn.close()
            text = explanation_of(response.status, response.reason, data)
            if not (response.status == 400 and self._step_down(text)):
                raise api_error(response.status, text)

    def _hijack(self, path: str, params: Mapping[str, Any] | None = None,
                json_body: Any = None) -> socket.socket:
        """POST with ``Upgrade: tcp`` on a new connection; the raw socket once the engine switched.

        The answer's head is read a byte at a time, so not one byte of the stream that follows
        it is taken into a buffer: the caller select()s on the socket itself.
        """
        body = json.dumps(json_body).encode() if json_body is not None else b""
        while True:
            conn = self._new_connection(None)
            try:
                conn.connect()
                sock = conn.sock
                assert sock is not None
                head = (f"POST {self._path(path, params, True)} HTTP/1.1\r\nHost: docker\r\n"
                        "Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n").encode()
                sock.sendall(head + body)
                status, reason, length = _read_head(sock)
                if status in (101, 200):
                    conn.sock = None  # the socket is the caller's now; the connection forgets it
                    return sock
                data = _read_body(sock, length)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                conn.close()
                raise _transport_error(exc, self.endpoint.url) from None
            except BaseException:
                conn.close()
                raise
            conn.close()
            text = explanation_of(status, reason, data)
            if not (status == 400 and self._step_down(text)):
                raise api_error(status, text)


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def _read_head(sock: socket.socket) -> tuple[int, str, int | None]:
    """Status, reason and Content-Length of an HTTP answer's head, read up to its blank line."""
    head = bytearray()
    while not head.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        if not byte:
            raise http.client.RemoteDisconnected("the engine closed the connection")
        head += byte
        if len(head) > 65536:
            raise http.client.HTTPException("the engine's answer has no end of headers")
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/") or not code.isdigit():
        raise http.client.BadStatusLine(lines[0])
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length" and value.strip().isdigit():
            length = int(value.strip())
    return int(code), reason, length


def _read_body(sock: socket.socket, length: int | None) -> bytes:
    """An error answer's body after a refused upgrade (its length, or what comes in a second)."""
    data = bytearray()
    if length is None:
        sock.settimeout(1.0)
    while length is None or len(data) < length:
        try:
            piece = sock.recv(65536 if length is None else length - len(data))
        except TimeoutError:
            break
        if not piece:
            break
        data += piece
    return bytes(data)
