"""A small Docker Engine API client on the standard library: what distrodebug asks of the engine.

Why not the docker SDK: importing it (and requests, urllib3 beneath it) took 110-170 ms, more than
a whole ``docker run``, on every ``exec``. This client speaks the same HTTP API with http.client:
one persistent HTTP/1.1 keep-alive connection for plain requests, a connection of its own for each
streamed body (an export, an archive, a pull) and each hijacked stream (attach, exec).

The method names and arguments follow docker-py's low-level ``APIClient`` where runtime.py used
them, so the call sites read the same; its exceptions are our own (:class:`NotFound`,
:class:`APIError`, :class:`EngineUnreachable`). Where the engine is, is decided by the pure
functions at the top (:func:`endpoint_from_env`), as the docker CLI decides it: ``DOCKER_HOST``
(with ``DOCKER_TLS_VERIFY`` and ``DOCKER_CERT_PATH``), else the current docker context, else the
default socket.

The API version is pinned (one round trip saved per command); an engine older than the pin says
so in a 400 answer naming its maximum, and the client then steps down to it and asks again.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import http.client
import io
import json
import os
import re
import socket
import ssl  # http.client imports it anyway
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote, urlencode, urlsplit

#: The oldest API with everything we use; pinning it saves a version round trip per command.
API_VERSION = "1.41"
DEFAULT_HOST = "unix:///var/run/docker.sock"
#: Seconds a plain request may wait for the engine between two reads.
DEFAULT_TIMEOUT = 60.0
#: Bytes read from a file body per chunk sent (http.client's 8 KiB would mean many small chunks).
_BLOCK = 1 << 20
#: Docker's answer to a client newer than the engine: "client version 1.41 is too new. Maximum
#: supported API version is 1.40".
_TOO_NEW = re.compile(r"maximum supported api version is (\d+\.\d+)", re.IGNORECASE)


# --------------------------------------------------------------------------------- exceptions
class EngineError(Exception):
    """Anything the engine client raises."""


class APIError(EngineError):
    """The engine answered with an error status."""

    def __init__(self, status_code: int, explanation: str) -> None:
        super().__init__(f"{status_code}: {explanation}")
        self.status_code = status_code
        self.explanation = explanation


class NotFound(APIError):
    """404: no such container, image, volume or path."""


class EngineUnreachable(EngineError):
    """No answer: the connection failed, broke off or timed out."""

    def __init__(self, reason: str, *, permission: bool = False, timeout: bool = False,
                 tls: bool = False) -> None:
        super().__init__(reason)
        #: The socket refused us (not in the docker group).
        self.permission = permission
        #: The engine was reached but did not answer in time.
        self.timeout = timeout
        #: The TLS handshake failed (a certificate not trusted, or ours refused).
        self.tls = tls


# ------------------------------------------------------------------------------ where to go
@dataclasses.dataclass(frozen=True)
class TLSSettings:
    """Client TLS as the docker CLI takes it: a CA to verify against, a client certificate."""

    verify: bool
    ca: str | None = None
    cert: str | None = None
    key: str | None = None


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """Where the engine listens: ``unix`` (a socket path), ``tcp`` (host, port, maybe TLS) or
    ``ssh`` (kept only to be refused with a clear message)."""

    url: str
    scheme: str
    path: str = ""
    host: str = ""
    port: int = 0
    tls: TLSSettings | None = None


def _cert_files(directory: str | os.PathLike[str], verify: bool) -> TLSSettings:
    """ca.pem, cert.pem and key.pem of a directory, the ones that exist."""
    base = Path(directory)

    def present(name: str) -> str | None:
        path = base / name
        return str(path) if path.is_file() else None

    cert, key = present("cert.pem"), present("key.pem")
    if cert is None or key is None:
        cert = key = None
    return TLSSettings(verify=verify, ca=present("ca.pem"), cert=cert, key=key)


def parse_host(url: str, tls: TLSSettings | None = None) -> Endpoint:
    """A DOCKER_HOST value as an Endpoint; ValueError for what the docker CLI would not take."""
    if url.startswith("/"):
        url = f"unix://{url}"
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("unix", "npipe"):
        if scheme == "npipe":
            raise ValueError(f"named pipes ({url}) exist only on Windows")
        return Endpoint(url, "unix", path=parts.netloc + parts.path or "/var/run/docker.sock")
    if scheme in ("tcp", "http", "https"):
        if not parts.hostname:
            raise ValueError(f"no host in {url!r}")
        if scheme == "https" and tls is None:
            tls = TLSSettings(verify=True)
        if scheme == "http":
            tls = None
        port = parts.port or (2376 if tls is not None else 2375)
        return Endpoint(url, "tcp", host=parts.hostname, port=port, tls=tls)
    if scheme == "ssh":
        return Endpoint(url, "ssh", host=parts.hostname or "", port=parts.port or 22)
    raise ValueError(f"unknown scheme in {url!r} (unix://, tcp:// or ssh:// are understood)")


def config_dir(environ: Mapping[str, str], home: Path) -> Path:
    """The docker CLI's configuration directory: $DOCKER_CONFIG, else ~/.docker."""
    return Path(environ["DOCKER_CONFIG"]) if environ.get("DOCKER_CONFIG") else home / ".docker"


def current_context(environ: Mapping[str, str], home: Path) -> str:
    """The context the docker CLI would use: $DOCKER_CONTEXT, else config.json's currentContext."""
    if environ.get("DOCKER_CONTEXT"):
        return environ["DOCKER_CONTEXT"]
    try:
        config = json.loads((config_dir(environ, home) / "config.json").read_text())
    except (OSError, ValueError):
        return "default"
    name = config.get("currentContext") if isinstance(config, dict) else None
    return str(name) if name else "default"


def context_endpoint(name: str, environ: Mapping[str, str], home: Path) -> Endpoint | None:
    """The docker endpoint of a named context (its meta.json and TLS files); None for none."""
    if name == "default":
        return None
    import hashlib  # here: most runs have no context, and it loads OpenSSL's hashes

    digest = hashlib.sha256(name.encode()).hexdigest()
    base = config_dir(environ, home) / "contexts"
    try:
        meta = json.loads((base / "meta" / digest / "meta.json").read_text())
        endpoint = meta["Endpoints"]["docker"]
        host = str(endpoint["Host"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    skip_verify = bool(endpoint.get("SkipTLSVerify"))
    tls_dir = base / "tls" / digest / "docker"
    tls = None
    if tls_dir.is_dir():
        tls = _cert_files(tls_dir, verify=not skip_verify)
    elif skip_verify:
        tls = TLSSettings(verify=False)
    return parse_host(host, tls)


def endpoint_from_env(environ: Mapping[str, str] | None = None, home: Path | None = None) -> Endpoint:
    """DOCKER_HOST if set (TLS from DOCKER_TLS_VERIFY, DOCKER_CERT_PATH), else the current docker
    context, else the default socket. ValueError for a DOCKER_HOST that cannot be used."""
    environ = os.environ if environ is None else environ
    home = Path.home() if home is None else home
    host = environ.get("DOCKER_HOST")
    if host:
        verify = bool(environ.get("DOCKER_TLS_VERIFY"))
        tls = None
        if verify or environ.get("DOCKER_CERT_PATH"):
            tls = _cert_files(environ.get("DOCKER_CERT_PATH") or home / ".docker", verify)
        return parse_host(host, tls)
    try:
        found = context_endpoint(current_context(environ, home), environ, home)
    except ValueError:
        found = None  # a broken CLI config must not stop us; fall back as the CLI does
    return found or parse_host(DEFAULT_HOST)


# ------------------------------------------------------------------------------ connections
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


def query(params: Mapping[str, Any] | None) -> str:
    """``?a=1&b=x`` from params as docker-py sends them: None dropped, booleans as 1/0, lists
    repeated, dicts (filters) as JSON whose values are lists."""
    if not params:
        return ""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            pairs.append((key, "1" if value else "0"))
        elif isinstance(value, list | tuple):
            pairs.extend((key, str(item)) for item in value)
        elif isinstance(value, dict):
            pairs.append((key, json.dumps({k: v if isinstance(v, list) else [v]
                                           for k, v in value.items()})))
        else:
            pairs.append((key, str(value)))
    return f"?{urlencode(pairs)}" if pairs else ""


def explanation_of(status: int, reason: str, body: bytes) -> str:
    """The engine's error message: its JSON ``message``, else the body, else the status reason."""
    text = body.decode("utf-8", "replace").strip()
    with contextlib.suppress(ValueError):
        data = json.loads(text)
        if isinstance(data, dict) and data.get("message"):
            return str(data["message"])
    return text or reason or f"HTTP {status}"


def api_error(status: int, explanation: str) -> APIError:
    """The error for an answer's status, with Docker's status where Podman says the same thing
    with 500: a name already in use or a running container removed without force (Docker: 409),
    a container removed a moment ago ("does not exist in database: no such container"; Docker:
    404). Callers then handle one engine's words."""
    if status == 500:
        lowered = explanation.lower()
        if "already in use" in lowered or "container state improper" in lowered:
            status = 409
        elif "no such container" in lowered:
            status = 404
    return NotFound(status, explanation) if status == 404 else APIError(status, explanation)


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


def json_objects(source: io.BufferedReader) -> Iterator[Any]:
    """The JSON objects of a progress stream (pull, import), however they are split in chunks."""
    decoder = json.JSONDecoder()
    pending = ""
    while True:
        data = source.read1(1 << 16)  # what has come, not 64 KiB: progress arrives in drops
        if not data:
            break
        pending += data.decode("utf-8", "replace")
        while True:
            pending = pending.lstrip()
            if not pending:
                break
            try:
                value, end = decoder.raw_decode(pending)
            except ValueError:
                break  # the rest of this object is still on its way
            pending = pending[end:]
            yield value
    if pending.strip():
        raise EngineUnreachable(f"the engine's progress stream ended mid-object: {pending[:80]!r}")


def raise_progress_error(item: Any) -> None:
    if isinstance(item, dict) and item.get("error"):
        detail = item.get("errorDetail") or {}
        raise APIError(int(detail.get("code") or 500) if isinstance(detail, dict) else 500,
                       str(item["error"]))


def host_config(**options: Any) -> dict[str, Any]:
    """A HostConfig body from docker-py's ``create_host_config`` keyword names (those we use)."""
    names = {
        "log_config": "LogConfig", "cap_add": "CapAdd", "cap_drop": "CapDrop",
        "privileged": "Privileged", "security_opt": "SecurityOpt", "pids_limit": "PidsLimit",
        "mem_limit": "Memory", "pid_mode": "PidMode", "ipc_mode": "IpcMode",
        "volumes_from": "VolumesFrom", "read_only": "ReadonlyRootfs", "auto_remove": "AutoRemove",
    }
    config: dict[str, Any] = {"NetworkMode": options.pop("network_mode", None) or "default"}
    binds = options.pop("binds", None)
    if binds:
        config["Binds"] = [f"{source}:{b['bind']}:{b.get('mode', 'rw')}" for source, b in binds.items()]
    for key, value in options.items():
        if key not in names:
            raise TypeError(f"host_config does not take {key!r}")
        if value is not None:
            config[names[key]] = value
    return config


def container_config(image: str, *, command: list[str] | None = None,
                     entrypoint: list[str] | None = None, environment: Mapping[str, str] | None = None,
                     user: str = "", labels: Mapping[str, str] | None = None, tty: bool = False,
                     detach: bool = False, stdin_open: bool = False,
                     host_config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The body of a container create, as docker-py's ``create_container`` builds it: not detached
    means stdout and stderr are attached, and stdin too (once) when it is open."""
    attach = not detach
    return {
        "Image": image,
        "Cmd": command,
        "Entrypoint": entrypoint,
        "Env": [f"{k}={v}" for k, v in environment.items()] if environment else None,
        "User": user,
        "Labels": dict(labels or {}),
        "Tty": tty,
        "OpenStdin": stdin_open,
        "StdinOnce": attach and stdin_open,
        "AttachStdin": attach and stdin_open,
        "AttachStdout": attach,
        "AttachStderr": attach,
        "HostConfig": dict(host_config or {}),
    }


def decode_path_stat(header: str | None) -> dict[str, Any]:
    """The X-Docker-Container-Path-Stat header of the archive API: base64 of a JSON object."""
    if not header:
        return {}
    try:
        value = json.loads(base64.b64decode(header))
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# ------------------------------------------------------------------------------------ client
class EngineClient:
    """The engine API calls distrodebug makes, named and shaped as docker-py's APIClient's."""

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

    # -- transport --------------------------------------------------------------------------
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

    # -- system -----------------------------------------------------------------------------
    def version(self, api_version: bool = True) -> dict[str, Any]:
        return dict(self._json("GET", "/version", versioned=api_version))

    def info(self) -> dict[str, Any]:
        return dict(self._json("GET", "/info"))

    def ping(self) -> bool:
        return self._request("GET", "/_ping", versioned=False)[2].strip() == b"OK"

    # -- containers -------------------------------------------------------------------------
    def containers(self, all: bool = False, filters: Mapping[str, Any] | None = None) -> list[Any]:
        return list(self._json("GET", "/containers/json",
                               params={"all": all or None, "filters": dict(filters or {}) or None}))

    def inspect_container(self, container: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/containers/{quote_part(container)}/json"))

    def create_host_config(self, **options: Any) -> dict[str, Any]:
        return host_config(**options)

    def create_container(self, image: str, *, name: str | None = None, **options: Any) -> dict[str, Any]:
        """POST /containers/create; the answer holds the new container's ``Id``."""
        return dict(self._json("POST", "/containers/create", params={"name": name},
                               json_body=container_config(image, **options)))

    def start(self, container: str) -> None:
        self._request("POST", f"/containers/{quote_part(container)}/start")

    def stop(self, container: str, timeout: int = 10) -> None:
        self._request("POST", f"/containers/{quote_part(container)}/stop", params={"t": timeout},
                      timeout=self.timeout + timeout)

    def wait(self, container: str, timeout: float | None = None) -> dict[str, Any]:
        """The exit status once the container stopped; EngineUnreachable(timeout=True) after
        ``timeout`` seconds without an answer."""
        return dict(self._json("POST", f"/containers/{quote_part(container)}/wait", timeout=timeout))

    def remove_container(self, container: str, v: bool = False, force: bool = False) -> None:
        self._request("DELETE", f"/containers/{quote_part(container)}", params={"v": v, "force": force})

    def resize(self, container: str, height: int, width: int) -> None:
        self._request("POST", f"/containers/{quote_part(container)}/resize", params={"h": height, "w": width})

    def diff(self, container: str) -> list[Any] | None:
        found = self._json("GET", f"/containers/{quote_part(container)}/changes")
        return list(found) if found else None

    def logs(self, container: str, tail: int | str = "all", timestamps: bool = False) -> bytes:
        """stdout and stderr as the engine kept them; without a TTY, its frame headers removed."""
        return b"".join(self.logs_stream(container, tail=tail, timestamps=timestamps))

    def logs_stream(self, container: str, tail: int | str = "all",
                    timestamps: bool = False) -> Iterator[bytes]:
        """The logs in pieces, frame headers removed without a TTY: a log of any size passes
        through in bounded memory (the caller keeps what it wants of it)."""
        tty = bool((self.inspect_container(container).get("Config") or {}).get("Tty"))
        answer = self._stream("GET", f"/containers/{quote_part(container)}/logs", params={
            "stdout": True, "stderr": True, "timestamps": timestamps, "tail": tail})
        with contextlib.closing(answer):
            yield from answer.chunks() if tty else demultiplexed(answer.chunks())

    def events(self, since: int | str, until: int | str,
               filters: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """The engine's events between two times (seconds since the epoch), one dict each; with
        ``until`` in the past or now, the engine ends the answer itself."""
        # Filters in the engine's own form, {"container": {"ID": true}}: Docker reads it and the
        # list form alike, Podman 4.3's compat events read only this one (a list matched nothing,
        # so a dump on Podman had no engine events at all).
        wanted = {key: {str(v): True for v in (value if isinstance(value, list | tuple) else [value])}
                  for key, value in (filters or {}).items()}
        answer = self._stream("GET", "/events", params={"since": since, "until": until,
                                                         "filters": json.dumps(wanted)})
        with contextlib.closing(answer):
            pending = b""
            for chunk in answer.chunks():
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    if line.strip():
                        yield dict(json.loads(line))
            if pending.strip():
                yield dict(json.loads(pending))

    def commit(self, container: str, repository: str, tag: str, conf: Mapping[str, Any],
               pause: bool = True) -> dict[str, Any]:
        # Labels go as LABEL changes too: Podman 4.3's compat commit ignores the body's Labels
        # (so cleanup could not find a snapshot by its labels); Docker applies both alike.
        changes = [f"LABEL {json.dumps(str(k))}={json.dumps(str(v))}"
                   for k, v in (conf.get("Labels") or {}).items()]
        made = dict(self._json("POST", "/commit", json_body=dict(conf), params={
            "container": container, "repo": repository, "tag": tag, "pause": pause,
            "changes": changes or None}))
        # Podman answers a bare 64-hex ID, which its DELETE then reads as a name: Docker's form.
        ident = str(made.get("Id", ""))
        if len(ident) == 64 and ":" not in ident:
            made["Id"] = f"sha256:{ident}"
        return made

    def attach_socket(self, container: str, params: Mapping[str, Any]) -> socket.socket:
        """The hijacked attach stream (stream.DockerStream reads and writes it)."""
        return self._hijack(f"/containers/{quote_part(container)}/attach", params=params)

    def exec_create(self, container: str, cmd: list[str], stdin: bool = False, stdout: bool = True,
                    stderr: bool = True, tty: bool = False,
                    environment: Mapping[str, str] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"AttachStdin": stdin, "AttachStdout": stdout,
                                "AttachStderr": stderr, "Tty": tty, "Cmd": cmd}
        if environment:
            body["Env"] = [f"{name}={value}" for name, value in environment.items()]
        return dict(self._json("POST", f"/containers/{quote_part(container)}/exec", json_body=body))

    def exec_start(self, exec_id: str, tty: bool = False) -> socket.socket:
        """Start an exec and hand back its hijacked stream."""
        return self._hijack(f"/exec/{quote_part(exec_id)}/start", json_body={"Detach": False, "Tty": tty})

    def exec_start_detached(self, exec_id: str) -> None:
        """Start an exec nobody reads: the engine answers once it runs."""
        self._request("POST", f"/exec/{quote_part(exec_id)}/start", json_body={"Detach": True, "Tty": False})

    def exec_inspect(self, exec_id: str) -> dict[str, Any]:
        """Running, ExitCode, Pid... of an exec."""
        return dict(self._json("GET", f"/exec/{quote_part(exec_id)}/json"))

    # -- archives -----------------------------------------------------------------------------
    def put_archive(self, container: str, path: str, data: bytes | BinaryIO) -> None:
        """Unpack a tar (bytes, or a file streamed in chunks) into ``path`` of the container."""
        self._request("PUT", f"/containers/{quote_part(container)}/archive", params={"path": path},
                      body=data, headers={"Content-Type": "application/x-tar"})

    def get_archive(self, container: str, path: str) -> tuple[Streamed, dict[str, Any]]:
        """``path`` as a tar stream (close it when done) and its stat."""
        stream = self._stream("GET", f"/containers/{quote_part(container)}/archive", params={"path": path})
        return stream, decode_path_stat(stream.headers.get("X-Docker-Container-Path-Stat"))

    def archive_stat(self, container: str, path: str) -> dict[str, Any]:
        """The stat of ``path`` in the container (HEAD of the archive API); NotFound if none."""
        _, headers, _ = self._request("HEAD", f"/containers/{quote_part(container)}/archive",
                                      params={"path": path})
        return decode_path_stat(headers.get("X-Docker-Container-Path-Stat"))

    # -- images ---------------------------------------------------------------------------------
    def images(self, filters: Mapping[str, Any] | None = None) -> list[Any]:
        return list(self._json("GET", "/images/json",
                               params={"filters": dict(filters or {}) or None}))

    def inspect_image(self, image: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/images/{quote_part(image)}/json"))

    def pull(self, repository: str, tag: str | None = None) -> Iterator[Any]:
        """Pull, yielding the progress objects; APIError for an error the stream reports."""
        stream = self._stream("POST", "/images/create", params={"fromImage": repository, "tag": tag},
                              headers={"X-Registry-Auth": registry_auth(repository)})
        with contextlib.closing(stream):
            for item in json_objects(io.BufferedReader(stream)):
                raise_progress_error(item)
                yield item

    def import_image_from_file(self, filename: str, repository: str,
                               changes: list[str] | None = None) -> None:
        """Import a root filesystem tar as an image (``docker import``)."""
        with open(filename, "rb") as source:
            stream = self._stream("POST", "/images/create", body=source, params={
                "fromSrc": "-", "repo": repository, "changes": changes or None},
                headers={"Content-Type": "application/tar"})
            with contextlib.closing(stream):
                for item in json_objects(io.BufferedReader(stream)):
                    raise_progress_error(item)

    def export_image(self, image: str) -> Streamed:
        """The image as ``docker save`` writes it (a tar stream; close it when done)."""
        return self._stream("GET", f"/images/{quote_part(image)}/get")

    def tag(self, image: str, repository: str, tag: str | None = None, force: bool = False) -> None:
        self._request("POST", f"/images/{quote_part(image)}/tag",
                      params={"repo": repository, "tag": tag, "force": force or None})

    def remove_image(self, image: str, force: bool = False, noprune: bool = False) -> None:
        self._request("DELETE", f"/images/{quote_part(image)}", params={"force": force, "noprune": noprune})

    # -- volumes ------------------------------------------------------------------------------
    def create_volume(self, name: str, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
        return dict(self._json("POST", "/volumes/create",
                               json_body={"Name": name, "Labels": dict(labels or {})}))

    def volumes(self, filters: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return dict(self._json("GET", "/volumes", params={"filters": dict(filters or {}) or None})
                    or {})

    def remove_volume(self, name: str, force: bool = False) -> None:
        self._request("DELETE", f"/volumes/{quote_part(name)}", params={"force": force})


def quote_part(name: str) -> str:
    """A name or image reference as a path segment (a reference keeps its / and :)."""
    return quote(name, safe="/:@")


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def demultiplexed(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The payloads of a multiplexed stream (8-byte headers: stream, 0, 0, 0, big-endian size),
    in pieces as they come; a header or a payload may span any number of chunks."""
    header = bytearray()
    left = 0
    for chunk in chunks:
        view = memoryview(chunk)
        while len(view):
            if left:
                take = min(left, len(view))
                yield bytes(view[:take])
                view, left = view[take:], left - take
                continue
            need = 8 - len(header)
            header += view[:need]
            view = view[need:]
            if len(header) == 8:
                left = int.from_bytes(header[4:8], "big")
                header.clear()


def demultiplex(data: bytes) -> bytes:
    """The payloads of a whole multiplexed answer."""
    return b"".join(demultiplexed([data]))


def registry_auth(repository: str, environ: Mapping[str, str] | None = None,
                  home: Path | None = None) -> str:
    """The X-Registry-Auth header for a pull: the credentials config.json stores inline for the
    repository's registry (``auths``), else an empty object (anonymous)."""
    environ = os.environ if environ is None else environ
    first = repository.split("/", 1)[0]
    registry = first if "/" in repository and ("." in first or ":" in first or first == "localhost") \
        else "https://index.docker.io/v1/"
    entry: dict[str, str] = {}
    with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
        config = json.loads((config_dir(environ, home or Path.home()) / "config.json").read_text())
        auths = config.get("auths") or {}
        for key in (registry, f"https://{registry}", f"http://{registry}"):
            stored = auths.get(key)
            if stored and stored.get("auth"):
                user, _, password = base64.b64decode(stored["auth"]).decode().partition(":")
                entry = {"username": user, "password": password, "serveraddress": registry}
                break
    return base64.urlsafe_b64encode(json.dumps(entry).encode()).decode()


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
