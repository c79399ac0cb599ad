"""The byte source under :class:`~distrodebug.bundle.tar.reader.TarReader`: a forward-only stream
read into large buffers and handed out as memoryviews of them, never copied.

Kept apart from the reader because it knows nothing of tar: it only makes bytes visible, hands
them out, and finds a needle among them. A buffer is only ever written past what was handed out,
so views stay valid for as long as they are kept (see :class:`Buffers`); the owner of the
buffers (``bundle/output.py``) recycles them once it is done with every view of one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import BinaryIO, cast

_MIN_READ = 64 << 10  # below this much free space, a read goes to a new buffer...
_SMALL_MOVE = 4096  # ...if no more than this many unread bytes have to move along


class Buffers:
    """Where a :class:`~distrodebug.bundle.tar.reader.TarReader` gets its read buffers: a new one
    each time.

    A buffer is written only past the bytes already handed out, so a view from the reader's
    ``views()`` stays valid for as long as it is kept. An owner that knows when its views are
    gone can recycle buffers by overriding both methods.
    """

    def get(self, size: int) -> bytearray:
        return bytearray(size)

    def done(self, buffer: bytearray) -> None:
        """The reader hands out nothing more from ``buffer`` (views of it may still be alive)."""


def _read_function(raw: BinaryIO) -> Callable[[memoryview], int]:
    # readinto1 returns after one underlying read, so a socket's bytes are used as they come
    # and a buffered file's own buffer is bypassed for large reads.
    for name in ("readinto1", "readinto"):
        method = getattr(raw, name, None)
        if method is not None:
            return cast(Callable[[memoryview], int], method)

    def readinto(view: memoryview) -> int:
        data = raw.read(len(view))
        view[: len(data)] = data
        return len(data)

    return readinto


class Source:
    """A forward-only byte source read into large buffers, handing out views and peeks."""

    def __init__(self, raw: BinaryIO, buffers: Buffers, size: int) -> None:
        self._readinto = _read_function(raw)
        self._buffers = buffers
        self._size = max(size, 2 * _MIN_READ)
        self.buf = bytearray()
        self._view = memoryview(self.buf)
        self.pos = 0  # next byte to hand out
        self.end = 0  # end of the bytes read into buf
        self.exhausted = False  # the underlying stream has ended
        self.offset = 0  # bytes handed out so far, for error messages

    def fill(self, want: int) -> int:
        """Make ``want`` bytes visible after ``pos`` (fewer only at end of stream); how many are."""
        avail = self.end - self.pos
        while avail < want and not self.exhausted:
            free = len(self.buf) - self.end
            if free < want - avail or (free < _MIN_READ and avail <= _SMALL_MOVE):
                self._switch(want)
            n = self._readinto(self._view[self.end :])
            if not n:
                self.exhausted = True
                break
            self.end += n
            avail += n
        return avail

    def room(self) -> int:
        """How many bytes can become visible without moving to a new buffer."""
        return len(self.buf) - self.pos

    def _switch(self, want: int) -> None:
        keep = self.end - self.pos
        new = self._buffers.get(max(self._size, 2 * (keep + want)))
        new[:keep] = self._view[self.pos : self.end]
        old = self.buf
        self._view.release()
        self.buf, self._view, self.pos, self.end = new, memoryview(new), 0, keep
        if len(old):
            self._buffers.done(old)

    def take(self, size: int) -> memoryview:
        """The next ``size`` visible bytes, consumed."""
        view = self._view[self.pos : self.pos + size]
        self.pos += size
        self.offset += size
        return view

    def skip(self, size: int) -> None:
        self.pos += size
        self.offset += size

    def rewind(self, size: int) -> None:
        """Give back the last ``size`` bytes taken; only right after a take from this buffer."""
        self.pos -= size
        self.offset -= size

    def find(self, needle: bytes, stop: int) -> int:
        """Offset of ``needle`` wholly within the next ``stop`` visible bytes, or -1."""
        hit = self.buf.find(needle, self.pos, min(self.pos + stop, self.end))
        return hit - self.pos if hit >= 0 else -1

    def close(self) -> None:
        self._view.release()
        if len(self.buf):
            self._buffers.done(self.buf)
        self.buf = bytearray()
        self._view = memoryview(self.buf)
        self.pos = self.end = 0
