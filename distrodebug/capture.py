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


def _feed(stream: Stream, source: BinaryIO) -> threading.Thread:
    """Copy ``source`` into the sidecar's stdin from a thread, then close stdin."""

    def run() -> None:
        try:
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
        feeder = _feed(started.stream, stdin_from) if stdin_from is not None else None
        output = SidecarOutput(started.stream, on_stderr)
        # Small: a large read (the dump's) then goes straight through to the socket.
        reader = io.BufferedReader(output, buffer_size=64 << 10)
        value = consume(reader, chosen)
        while reader.read(1 << 20):  # drain, so the command can finish writing
            pass
        code = started.wait()
        if feeder is not None and feeder.is_alive():
            # The command ended without reading all its input (a refused copy): nobody reads
            # the other end any more, so a blocked send would wait forever. Close it.
            started.stream.close()
            feeder.join(10)
    check_target_survived(runtime, chosen, code)
    return value, code, bytes(output.stderr), chosen
