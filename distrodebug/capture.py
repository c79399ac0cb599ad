"""Commands whose output we consume (dump, cp): the sidecar's stdout as a file, stdin fed from one.

The same flow as an exec session (session.plan, started_sidecar), with the stream handed to a
consumer instead of the terminal.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from typing import Any, BinaryIO, TypeVar

from distrodebug.runtimes.base import Runtime, Stream
from distrodebug.session import (
    UI,
    Plan,
    SessionRequest,
    Terminal,
    check_target_survived,
    plan,
    started_replanning,
)
from distrodebug.settings import Settings

T = TypeVar("T")


class SidecarOutput(io.RawIOBase):
    """The sidecar's stdout as a readable binary file; its stderr is kept aside.

    Each stream demultiplexes into the caller's buffer itself (Docker's attach socket straight
    from the socket: one copy in all).
    """

    def __init__(self, stream: Stream, on_stderr: Callable[[bytes], None] | None = None) -> None:
        self._stream = stream
        self.stderr = bytearray()
        self._on_stderr = on_stderr
        self._ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        if self._ended or not len(view):
            return 0
        size = self._stream.readinto_stdout(view, self._stderr)
        self._ended = not size
        return size

    def _stderr(self, data: bytes) -> None:
        self.stderr += data
        if self._on_stderr and data:
            self._on_stderr(data)


class StdinGate:
    """Holds a command's input back until the command says it will read it, or refuses.

    Sent to a command that has already refused (a copy into a read-only directory), the input
    fills every buffer on the way (on Kubernetes the API server's stream to the kubelet too),
    and then neither the command's status nor the end of its output can reach us any more.
    """

    def __init__(self) -> None:
        self._decided = threading.Event()
        self.go = False

    def open(self) -> None:
        self.go = True
        self._decided.set()

    def refuse(self) -> None:
        self._decided.set()

    def wait(self) -> bool:
        self._decided.wait()
        return self.go


def _feed(stream: Stream, source: BinaryIO, gate: StdinGate | None) -> threading.Thread:
    """Copy ``source`` into the sidecar's stdin from a thread (once ``gate`` opens), then close stdin."""

    def run() -> None:
        try:
            if gate is not None and not gate.wait():
                return
            while chunk := source.read(1 << 16):
                stream.send(chunk)
        except OSError:
            pass  # the command ended early; its status says why
        finally:
            stream.close_write()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def capture(
    request: SessionRequest,
    runtime: Runtime,
    settings: Settings,
    ui: UI,
    consume: Callable[[BinaryIO, Plan], T],
    on_stderr: Callable[[bytes], None] | None = None,
    stdin_from: BinaryIO | None = None,
    stdin_gate: StdinGate | None = None,
) -> tuple[T, int, bytes, Plan]:
    """Run a command in the sidecar and hand its stdout, as a file, to ``consume``.

    Returns what ``consume`` returned, the command's exit status, its stderr and the plan.
    """
    first = plan(request, runtime, settings, ui, Terminal())
    with started_replanning(runtime, first, lambda: plan(request, runtime, settings, ui, Terminal())) as (
        started,
        chosen,
    ):
        assert started.stream is not None
        feeder = _feed(started.stream, stdin_from, stdin_gate) if stdin_from is not None else None
        output = SidecarOutput(started.stream, on_stderr)
        # Small: a large read (the dump's) then goes straight through to the socket.
        reader = io.BufferedReader(output, buffer_size=64 << 10)
        value = consume(reader, chosen)
        while reader.read(1 << 20):  # drain, so the command can finish writing
            pass
        if stdin_gate is not None:
            stdin_gate.refuse()  # the output ended: whatever was still held back stays here
        code = started.wait()
        if feeder is not None and feeder.is_alive():
            # The command ended without reading all its input (a refused copy): nobody reads
            # the other end any more, so a blocked send would wait forever. Close it.
            started.stream.close()
            feeder.join(10)
    check_target_survived(runtime, chosen, code)
    return value, code, bytes(output.stderr), chosen
