"""`forward`: reach a port the target listens on, loopback-only ones included, from this machine.

A relay sidecar joins only the target's network namespace (no PID namespace, no capability, user
nobody, read-only root). Each local connection becomes one process in it that joins a byte
stream to ``127.0.0.1:PORT`` (busybox ``nc``), run through the runtime's exec API, so nothing
listens anywhere but on the local address we bind, and every connection is independent. The
relay is removed when forwarding ends (Ctrl-C, SIGTERM, SIGHUP); should we die first, its idle
command ends with our attach stream, and ``cleanup`` removes the stopped container.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from distrodebug import labels, terminal
from distrodebug.errors import Interrupted, TargetNotDebuggable, UsageError
from distrodebug.model import STDOUT, RelaySpec, TargetInfo
from distrodebug.runtimes.base import PortForwarding, Relay, Runtime, Stream
from distrodebug.settings import Settings
from distrodebug.target import Target

_CHUNK = 1 << 16


@dataclass(frozen=True)
class Ports:
    local: int
    remote: int


def parse_ports(text: str) -> Ports:
    """'8080' (same port here), '9000:8080', '0:8080' (any free local port)."""
    local, sep, remote = text.rpartition(":")
    try:
        ports = Ports(int(local) if sep else int(remote), int(remote))
    except ValueError:
        ports = Ports(-1, -1)
    if not (0 <= ports.local <= 65535 and 0 < ports.remote <= 65535):
        raise UsageError(f"'{text}' is not [LOCAL:]REMOTE_PORT.",
                         "Examples: 8080, 9000:8080, or 0:8080 for any free local port.")
    return ports


def relay_spec(info: TargetInfo, image: str) -> RelaySpec:
    """The relay for `info`, labelled like every object we create."""
    return RelaySpec(
        image=image,
        target_id=info.id,
        labels=labels.session_labels(session_id=labels.new_session_id(), target=info.name,
                                     role="forward"),
        annotations=labels.session_annotations(target=info.name),
    )


def bind(address: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((address, port))
    except OSError as exc:
        listener.close()
        raise UsageError(f"Cannot listen on {address}:{port}: {exc.strerror}.",
                         "Choose another local port (LOCAL:REMOTE), or 0 for any free one.") from None
    listener.listen(128)
    return listener


def pump(local: socket.socket, stream: Stream, complain: Callable[[str], None]) -> None:
    """Copy bytes both ways until the remote side ends; the local side's EOF is passed on."""
    errors = bytearray()
    local_open = True
    try:
        while True:
            watched = [stream.fileno()] + ([local.fileno()] if local_open else [])
            ready = [watched[0]] if stream.pending() else select.select(watched, [], [])[0]
            if local_open and local.fileno() in ready:
                data = local.recv(_CHUNK)
                if data:
                    stream.send(data)
                else:
                    local_open = False
                    stream.close_write()
            if watched[0] in ready:
                frames = stream.recv()
                if not frames:
                    break
                for channel, data in frames:
                    if channel == STDOUT:
                        local.sendall(data)
                    else:
                        errors += data
    except OSError:
        pass  # either side went away: this connection is over, the others go on
    finally:
        with contextlib.suppress(OSError):
            local.shutdown(socket.SHUT_RDWR)
        local.close()
        stream.close()
        if errors:
            complain(errors.decode("utf-8", "replace").strip())


class Forwarding:
    """One running forward: a listener here, a relay there."""

    def __init__(self, relay: Relay, listener: socket.socket, remote: int,
                 complain: Callable[[str], None]) -> None:
        self.relay, self.listener, self.remote = relay, listener, remote
        self._complain = complain
        self.connections = 0

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.listener.getsockname()[:2]
        return str(host), int(port)

    def serve(self) -> None:
        """Accept until interrupted; each connection gets its own thread and relay process."""
        while True:
            local, _ = self.listener.accept()
            self.connections += 1
            threading.Thread(target=self._one, args=(local,), daemon=True).start()

    def _one(self, local: socket.socket) -> None:
        try:
            stream = self.relay.connect(self.remote)
        except Exception as exc:  # noqa: BLE001 - reported, and the next connection may work
            self._complain(f"cannot reach port {self.remote}: {exc}")
            local.close()
            return
        pump(local, stream, self._complain)


@contextlib.contextmanager
def started(target: Target, ports: Ports, runtime: Runtime, relays: PortForwarding,
            settings: Settings, notice: Callable[[str], None],
            address: str = "127.0.0.1") -> Iterator[Forwarding]:
    """Inspect, bind, start the relay; remove it whatever ends the block."""
    info = runtime.inspect(target)
    if not info.running:
        raise TargetNotDebuggable(
            f"'{info.name}' is {info.status}: only a running target has ports to forward.",
            runtime.gone_hint(info))
    image = runtime.ensure_image(settings.image, notice)
    listener = bind(address, ports.local)
    relay: Relay | None = None
    try:
        with terminal.hangup_signals():
            relay = relays.start_relay(relay_spec(info, image.ref), info)
            yield Forwarding(relay, listener, ports.remote,
                             lambda text: notice(f"distrodebug: {text}"))
    except KeyboardInterrupt:
        raise Interrupted("Forwarding stopped; the relay was removed.") from None
    except terminal.Hangup as exc:
        raise Interrupted(f"Received {exc}; forwarding stopped and the relay was removed.") from None
    finally:
        listener.close()
        if relay is not None:
            relay.remove()
