"""The bundle's output: tar bytes written, and large files hashed, by a worker thread.

What goes into a bundle is decided by contents.py and fscopy.py; this only moves bytes to the file.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections.abc import Callable
from typing import BinaryIO

from distrodebug.bundle.tar.source import Buffers

# The pipeline's sizes (tests/unit/bundle shrinks them to recycle every buffer often).
IN_FLIGHT = 16  # pieces queued for the worker (gathered ones are at most STAGE bytes each)
STAGE = 256 << 10  # smaller writes are gathered into one piece of about this size
WRITEBACK = 32 << 20  # start writing the bundle to disk after about this many new bytes
READ_BUFFER = 1 << 20  # the tar reader's buffers; pieces of content are views into them...
READ_BUFFERS = 5  # ...recycled: this many at most


def fileno_of(raw: BinaryIO) -> int | None:
    try:
        return raw.fileno()
    except (OSError, ValueError, AttributeError):
        return None


_Piece = tuple["hashlib._Hash | None", bytes | bytearray | memoryview] | Callable[[], None] | None


class Output(Buffers):
    """The bundle's tar bytes, in order, written (and hashed, for large files) by a worker thread.

    sha256, file writes and zstd compression release the GIL on large buffers, so they run beside
    the main thread's socket reads and tar parsing. Small writes (headers, small files) are
    gathered into pieces of about 256 KiB so the worker wakes once per piece, not once per member.

    Memory stays flat: the tar reader's buffers come from here (:class:`Buffers`), a fixed set
    that the worker hands back once it has written every view of one, and at most a few gathered
    pieces are queued. A failure on the worker (disk full) is raised on the main thread at its
    next write.
    """

    def __init__(self, out: BinaryIO, fd: int | None) -> None:
        self._out = out
        self._fd = fd  # the bundle file under ``out``, for early writeback
        self.stage = bytearray()  # small writes, gathered; append to it and call settle()
        self._pieces: queue.Queue[_Piece] = queue.Queue(IN_FLIGHT)
        self._error: BaseException | None = None
        self._free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        self._made = 0
        self._closed = False  # the worker was told to stop
        self._thread = threading.Thread(target=self._work, name="distrodebug-bundle", daemon=True)
        self._thread.start()

    # -- Buffers: the reader's buffers, recycled once the worker is done with them --------------

    def get(self, size: int) -> bytearray:
        """A read buffer: a new one while there are fewer than a handful, then a returned one."""
        if size > READ_BUFFER:
            return bytearray(size)  # never happens with plain tar headers; not recycled
        if self._made < READ_BUFFERS:
            self._made += 1
            return bytearray(READ_BUFFER)
        while True:
            try:
                return self._free.get(timeout=1)
            except queue.Empty:
                if self._error is not None or not self._thread.is_alive():
                    raise self._error or Aborted() from None

    def done(self, buffer: bytearray) -> None:
        """Free ``buffer`` for reuse once the worker is past every view of it queued so far."""
        if len(buffer) != READ_BUFFER or self._closed or threading.get_ident() == self._thread.ident:
            return  # not ours, or the bundle is over (the reader may be finalised late, anywhere)
        self.call(lambda: self._free.put(buffer))

    # -- the bundle's bytes -----------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Write ``data`` after everything before it; the caller must not change it afterwards."""
        if len(data) < STAGE:
            self.stage += data
            if len(self.stage) >= STAGE:
                self._flush()
        else:
            self._flush()
            self._put((None, data))

    def settle(self) -> None:
        """Pass on what callers appended to :attr:`stage` themselves, once there is enough."""
        if len(self.stage) >= STAGE:
            self._flush()

    def hash_write(self, digest: hashlib._Hash, data: bytes | memoryview) -> None:
        """Hash ``data`` into ``digest`` and write it, on the worker: touch ``digest`` only in
        a :meth:`call` queued after this."""
        self._flush()
        self._put((digest, data))

    def call(self, function: Callable[[], None]) -> None:
        """Run ``function`` on the worker once everything queued before it is written.

        It runs even after a failure (it must not write), so waiting on it cannot hang.
        """
        self._flush()
        self._put(function)

    def close(self) -> None:
        """Write what is left and wait for the worker; raises what failed there."""
        self._flush()
        self._put(None)
        self._closed = True
        self._thread.join()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """Stop the worker without writing what is still queued (the bundle is being discarded)."""
        if not self._closed:
            self._error = self._error or Aborted()
            self._pieces.put(None)
            self._closed = True
            self._thread.join()

    def _flush(self) -> None:
        if self.stage:
            stage, self.stage = self.stage, bytearray()
            self._put((None, stage))

    def _put(self, piece: _Piece) -> None:
        if self._error is not None and piece is not None and not callable(piece):
            raise self._error
        while True:
            try:
                self._pieces.put(piece, timeout=1)
                return
            except queue.Full:
                if not self._thread.is_alive():  # cannot happen: the worker catches everything
                    raise self._error or Aborted() from None

    def _work(self) -> None:
        pieces, write = self._pieces, self._out.write
        unsynced, synced = 0, 0
        while True:
            piece = pieces.get()
            if piece is None:
                return
            try:
                if callable(piece):
                    piece()
                elif self._error is None:  # after a failure, drain: the main thread raises it
                    digest, data = piece
                    if digest is not None:
                        digest.update(data)
                    write(data)
                    unsynced += len(data)
                    if unsynced >= WRITEBACK and self._fd is not None:
                        synced, unsynced = self._writeback(synced), 0
            except BaseException as exc:  # re-raised on the main thread, then the bundle is removed
                self._error = self._error or exc

    def _writeback(self, start: int) -> int:
        """Start writing what the file has so far to disk, without waiting for it.

        The final fsync then finds little left to do: the disk works while the stream still
        flows. (Linux starts writeback of dirty pages for POSIX_FADV_DONTNEED; other systems
        just do nothing.)
        """
        assert self._fd is not None
        try:
            end = os.lseek(self._fd, 0, os.SEEK_CUR)
            os.posix_fadvise(self._fd, start, end - start, os.POSIX_FADV_DONTNEED)
        except (OSError, AttributeError):
            self._fd = None
            return start
        return end


class Aborted(Exception):
    """The bundle was abandoned while the worker still had pieces to write."""
