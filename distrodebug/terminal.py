"""Raw mode, window size and the byte pump between the local terminal and a sidecar stream.

Shared by every runtime: anything with the Stream protocol (a Docker attach socket, a Kubernetes
WebSocket) can be pumped. The local terminal is restored on every way out, including signals.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import signal
import struct
import termios
import tty
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Protocol

from distrodebug.errors import OutputClosed, OutputFailed
from distrodebug.model import STDERR
from distrodebug.runtimes.base import Stream


class Hangup(BaseException):
    """SIGTERM or SIGHUP arrived; the session must end and clean up.

    A BaseException, like KeyboardInterrupt, so no ``except Exception`` on the way swallows it
    or turns it into another error."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Tap(Protocol):
    """Sees every byte the pump moves, with the terminal's resizes (a session recording)."""

    def output(self, data: bytes) -> None:
        """Bytes written to the local terminal (stdout and stderr alike, in order)."""
        ...

    def input(self, data: bytes) -> None:
        """Bytes read from the local terminal and sent to the session."""
        ...

    def resize(self, rows: int, cols: int) -> None: ...


def window_size(fd: int) -> tuple[int, int]:
    """(rows, cols) of the terminal on fd, or (24, 80) when it is not one."""
    try:
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
        if rows and cols:
            return rows, cols
    except OSError:
        pass
    return 24, 80


@contextlib.contextmanager
def raw_mode(fd: int) -> Iterator[None]:
    """Put the terminal in raw mode and always restore it."""
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd, termios.TCSANOW)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSAFLUSH, saved)


@contextlib.contextmanager
def hangup_signals() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into a Hangup exception so `finally` blocks run."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        raise Hangup(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def resize_events() -> Iterator[int]:
    """A pipe fd that becomes readable on every SIGWINCH."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    os.set_blocking(read_fd, False)

    def handler(_signum: int, _frame: FrameType | None) -> None:
        with contextlib.suppress(OSError):
            os.write(write_fd, b"w")

    previous = signal.signal(signal.SIGWINCH, handler)
    try:
        yield read_fd
    finally:
        signal.signal(signal.SIGWINCH, previous)
        os.close(read_fd)
        os.close(write_fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [])
            continue
        except BrokenPipeError:
            raise OutputClosed("The output pipe was closed by its reader; the command was ended "
                               "and the sidecar removed.") from None
        except OSError as exc:
            raise OutputFailed(f"Writing the command's output failed: {exc.strerror}; the command "
                               "was ended and the sidecar removed.",
                               "Free some space or write the output elsewhere.") from None
        view = view[written:]


def pump(
    stream: Stream,
    *,
    stdin_fd: int | None,
    stdout_fd: int,
    stderr_fd: int,
    resize_fd: int | None = None,
    on_resize: Callable[[], None] | None = None,
    tap: Tap | None = None,
) -> None:
    """Copy stdin to the stream and the stream to stdout/stderr until the stream ends.

    When stdin reaches end of file the write side is closed, so the remote command sees EOF too.
    ``tap`` sees each piece of output after it was written and each piece of input before it is
    sent.
    """
    watch_stdin = stdin_fd is not None
    while True:
        readable: list[int] = [stream.fileno()]
        if watch_stdin and stdin_fd is not None:
            readable.append(stdin_fd)
        if resize_fd is not None:
            readable.append(resize_fd)
        if stream.pending():
            ready = [stream.fileno()]
        else:
            try:
                ready, _, _ = select.select(readable, [], [])
            except InterruptedError:
                continue
        if resize_fd is not None and resize_fd in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(resize_fd, 512)
            if on_resize:
                on_resize()
        if stream.fileno() in ready:
            frames = stream.recv()
            if not frames:
                return
            for channel, data in frames:
                if data:
                    _write_all(stderr_fd if channel == STDERR else stdout_fd, data)
                    if tap is not None:
                        tap.output(data)
        if watch_stdin and stdin_fd is not None and stdin_fd in ready:
            try:
                data = os.read(stdin_fd, 65536)
            except OSError as exc:
                if exc.errno != errno.EIO:
                    raise
                data = b""
            if data:
                if tap is not None:
                    tap.input(data)
                stream.send(data)
            else:
                watch_stdin = False
                stream.close_write()
