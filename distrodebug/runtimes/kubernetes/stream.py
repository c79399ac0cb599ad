"""Kubernetes attach/exec over WebSocket (channel protocols v5, falling back to v4).

Every message is one channel byte and a payload: 0 stdin, 1 stdout, 2 stderr, 3 status (a JSON
metav1.Status on v4/v5), 4 resize (client to server), 255 close (v5: half-close a channel). The
official client's stream() patches the ApiClient in place and cannot half-close stdin on v4, so
we drive websocket-client ourselves, with the client's own TLS and auth settings.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

from distrodebug.errors import SidecarFailed
from distrodebug.model import STDERR, STDOUT
from distrodebug.sidecar import EXIT_MARK

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
STDIN_CH, STDOUT_CH, STDERR_CH, STATUS_CH, RESIZE_CH, CLOSE_CH = 0, 1, 2, 3, 4, 255


def exit_code_from_status(status: dict[str, Any] | None) -> int | None:
    """The exit code a v4/v5 status message carries (exec only; attach has none)."""
    if not status:
        return None
    if status.get("status") == "Success":
        return 0
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            try:
                return int(cause.get("message", ""))
            except ValueError:
                return None
    return None


class ExitMarks:
    """Takes the debugger's exit marks (sidecar.EXIT_MARK, digits, BEL) out of its output.

    ``code`` is the status the last mark carried, as long as no output followed it: the entry
    script prints its mark last, so a mark printed earlier by something in the session (or one
    followed by a background job's output) never decides the status; without a valid last mark
    it is None and the caller asks the API server. A mark may arrive split across reads: only
    what could still become one is held back at the end of a read, until the next read or the end.
    """

    MAX_DIGITS = 3  # exit statuses are 0..255

    def __init__(self) -> None:
        self.code: int | None = None
        self._held = b""

    def feed(self, data: bytes) -> bytes:
        """``data`` without the complete marks in it, and without a possible partial one at its end."""
        data = self._held + data
        self._held = b""
        out = bytearray()
        start = 0  # what is before start was copied to out or was a mark
        search = 0
        while (at := data.find(EXIT_MARK, search)) >= 0:
            digits_at = at + len(EXIT_MARK)
            end = digits_at
            while end < len(data) and end - digits_at <= self.MAX_DIGITS and data[end:end + 1].isdigit():
                end += 1
            count = end - digits_at
            if end == len(data) and count <= self.MAX_DIGITS:
                self._emit(out, data[start:at])
                self._held = data[at:]
                return bytes(out)
            if 0 < count <= self.MAX_DIGITS and data[end:end + 1] == b"\x07":
                self._emit(out, data[start:at])
                self.code = int(data[digits_at:end])
                start = search = end + 1
            else:
                search = at + 1  # not a mark: its bytes go through as they are
        tail = data[start:]
        for size in range(min(len(EXIT_MARK) - 1, len(tail)), 0, -1):
            if tail.endswith(EXIT_MARK[:size]):
                self._emit(out, tail[:-size])
                self._held = tail[-size:]
                return bytes(out)
        self._emit(out, tail)
        return bytes(out)

    def flush(self) -> bytes:
        """At the end of the stream: whatever was held back, which turned out to be output."""
        rest, self._held = self._held, b""
        if rest:
            self.code = None
        return rest

    def _emit(self, out: bytearray, data: bytes) -> None:
        if data:
            out += data
            self.code = None


class WebSocketStream:
    """The Stream protocol over a connected websocket-client WebSocket."""

    def __init__(self, ws: Any) -> None:
        self._ws = ws
        # The protocol was offered as a raw header, so websocket-client did not record the answer.
        headers = {k.lower(): v for k, v in (ws.getheaders() or {}).items()}
        self.protocol = ws.getsubprotocol() or headers.get("sec-websocket-protocol", "")
        self.status: dict[str, Any] | None = None
        #: Set (watch_exit_marks) for a debugger whose entry script prints its status at the end.
        self.exit_marks: ExitMarks | None = None
        self._ended = False
        self._stdout = bytearray()

    def watch_exit_marks(self) -> None:
        """Take the debugger's exit marks out of stdout, keeping the last one's status."""
        self.exit_marks = ExitMarks()

    def fileno(self) -> int:
        return int(self._ws.sock.fileno())

    def pending(self) -> bool:
        # Once ended, recv answers at once (the end) without touching the socket.
        return self._ended or bool(getattr(self._ws.sock, "pending", lambda: 0)())

    def send(self, data: bytes) -> None:
        self._ws.send_binary(bytes([STDIN_CH]) + data)

    def resize(self, rows: int, cols: int) -> None:
        payload = json.dumps({"Width": cols, "Height": rows}).encode()
        with contextlib.suppress(Exception):
            self._ws.send_binary(bytes([RESIZE_CH]) + payload)

    def _frame(self) -> tuple[int, bytes] | None:
        """The next message as (channel, payload); None at the end, channel -1 for no data."""
        import websocket

        try:
            opcode, data = self._ws.recv_data(control_frame=True)
        except (websocket.WebSocketConnectionClosedException, OSError):
            return None
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return None
        if opcode not in (websocket.ABNF.OPCODE_BINARY, websocket.ABNF.OPCODE_TEXT) or not data:
            return -1, b""
        return data[0], bytes(data[1:])

    def recv(self) -> list[tuple[int, bytes]]:
        frame = None if self._ended else self._frame()
        if frame is None:
            self._ended = True
            rest = self.exit_marks.flush() if self.exit_marks is not None else b""
            return [(STDOUT, rest)] if rest else []
        channel, payload = frame
        if channel == STATUS_CH and payload:
            with contextlib.suppress(ValueError):
                self.status = json.loads(payload)
            return [(STDOUT, b"")]
        if channel == STDERR_CH:
            return [(STDERR, payload)]
        if channel != STDOUT_CH:
            return [(STDOUT, b"")]
        if self.exit_marks is not None:
            payload = self.exit_marks.feed(payload)
        return [(STDOUT, payload)]

    def readinto_stdout(self, view: memoryview, on_stderr: Callable[[bytes], None]) -> int:
        while not self._stdout:
            frames = self.recv()
            if not frames:
                return 0
            for channel, data in frames:
                if channel == STDERR:
                    on_stderr(data)
                else:
                    self._stdout += data
        size = min(len(view), len(self._stdout))
        view[:size] = self._stdout[:size]
        del self._stdout[:size]
        return size

    def close_write(self) -> None:
        # Only v5 can say "stdin ended"; on v4 the remote side sees EOF when we disconnect.
        if self.protocol == V5:
            with contextlib.suppress(Exception):
                self._ws.send_binary(bytes([CLOSE_CH, STDIN_CH]))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._ws.close(timeout=1)


class PortStream(WebSocketStream):
    """One forwarded port over the pods/portforward WebSocket (v4 channel protocol).

    Channel 0 carries the port's bytes both ways, channel 1 the kubelet's errors about it; the
    first frame the server sends on each channel is the port number (two bytes), not data. There
    is no half-close: a local EOF is kept until the remote side ends the connection.
    """

    def __init__(self, ws: Any) -> None:
        super().__init__(ws)
        self._started: set[int] = set()

    def send(self, data: bytes) -> None:
        self._ws.send_binary(b"\x00" + data)

    def recv(self) -> list[tuple[int, bytes]]:
        frame = self._frame()
        if frame is None:
            return []
        channel, payload = frame
        if channel < 0:
            return [(STDOUT, b"")]
        if channel not in self._started:
            self._started.add(channel)
            payload = payload[2:]
        return [(STDERR if channel % 2 else STDOUT, payload)]

    def close_write(self) -> None:
        pass


def refuse_socks(proxy: str | None) -> None:
    """A SOCKS ``proxy-url`` serves REST calls but not attach and exec: say so before trying.

    The official client hands websocket-client a proxy's host and port but not its type, so the
    WebSocket would send an HTTP CONNECT to a SOCKS proxy and fail with a message about neither.
    """
    scheme = (proxy or "").partition("://")[0].lower()
    if scheme.startswith("socks"):
        raise SidecarFailed(
            f"The kubeconfig's proxy-url is {scheme}://: the Kubernetes client reaches the API "
            "through it, but cannot open attach and exec streams (WebSocket) through a SOCKS proxy.",
            "Use an http:// proxy in the kubeconfig's proxy-url (or HTTPS_PROXY), or reach the "
            "API server directly (a VPN, or an SSH tunnel with -L instead of -D).")


def connect(configuration: Any, path: str, query: list[tuple[str, str]],
            protocols: str = f"{V5},{V4}", kind: type[WebSocketStream] = WebSocketStream,
            ) -> WebSocketStream:
    """Open a WebSocket to an attach, exec or portforward path with the client's TLS and auth."""
    from urllib.parse import urlencode

    from kubernetes.stream.ws_client import create_websocket

    host = configuration.host.rstrip("/")
    url = host.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    url = f"{url}{path}?{urlencode(query)}"
    headers = {"sec-websocket-protocol": protocols}
    token = configuration.get_api_key_with_prefix("authorization") or configuration.get_api_key_with_prefix(
        "BearerToken"
    )
    if token:
        headers["authorization"] = token
    import websocket

    refuse_socks(configuration.proxy)
    try:
        ws = create_websocket(configuration, url, headers)
    except websocket.WebSocketBadStatusException as exc:
        status = getattr(exc, "status_code", "?")
        body = (getattr(exc, "resp_body", b"") or b"")[:300]
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
        raise SidecarFailed(f"The API server refused the stream to the debugger (HTTP {status}): "
                            f"{text.strip() or exc}.",
                            "Check distrodebug doctor for the pods/exec and pods/attach permissions.",
                            ) from None
    return kind(ws)

