"""Writing tar: pax-format members (header, content in pieces, padding) and bare header blocks.

The reading side, with its markers and resynchronisation, is :mod:`distrodebug.bundle.tar.reader`;
writing needs none of that, only the header builders of :mod:`distrodebug.bundle.tar.header`.
"""

from __future__ import annotations

import tarfile
from typing import Any, BinaryIO

from distrodebug.bundle.tar.header import BLOCK, ENC, ERRORS, build_block, fast_tobuf

#: Missing content is zero-filled in pieces of this size, not in one allocation of the whole gap.
_FILL = 1 << 20
_ZERO_BLOCK = bytes(BLOCK)


class TarWriter:
    """Write pax-format members to a stream: header, content in pieces, padding."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._left = 0
        self._pad = 0

    def begin(self, info: tarfile.TarInfo) -> None:
        """Write the header; for regular files, ``info.size`` content bytes must follow."""
        self._out.write(fast_tobuf(info) or info.tobuf(tarfile.PAX_FORMAT, ENC, ERRORS))
        size = info.size if info.isreg() else 0
        self._left = size
        self._pad = -size % BLOCK

    def write(self, data: bytes | memoryview) -> None:
        if len(data) > self._left:
            raise ValueError("more content than the header announced")
        self._out.write(data)
        self._left -= len(data)

    def end(self) -> int:
        """Finish the member, zero-filling missing content; returns how many bytes were filled."""
        missing = self._left
        while self._left:
            n = min(self._left, _FILL)
            self._out.write(bytes(n))
            self._left -= n
        if self._pad:
            self._out.write(_ZERO_BLOCK[: self._pad])
        self._pad = 0
        return missing

    def add_bytes(self, info: tarfile.TarInfo, data: bytes) -> None:
        info.size = len(data)
        self.begin(info)
        self.write(data)
        self.end()

    def close(self) -> None:
        """End of archive: two zero blocks."""
        self._out.write(bytes(2 * BLOCK))


def member_info(name: str, kind: bytes, **fields: Any) -> tarfile.TarInfo:
    """A TarInfo for :meth:`TarWriter.begin`: mode 0644 unless ``fields`` say otherwise."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o644
    for key, value in fields.items():
        setattr(info, key, value)
    return info


def header_block(
    name: str, kind: bytes, mode: int, uid: int, gid: int, mtime: int, size: int = 0, linkname: str = ""
) -> bytes:
    """The header :meth:`TarWriter.begin` writes for these fields, without ``TarInfo``'s cost."""
    block = build_block(name, kind, mode & 0o7777, uid, gid, size, mtime, linkname)
    if block is not None:
        return block
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid, info.mtime = kind, mode, uid, gid, mtime
    info.size, info.linkname = size, linkname
    return info.tobuf(tarfile.PAX_FORMAT, ENC, ERRORS)


def padding(size: int) -> bytes:
    """The zero bytes that follow ``size`` content bytes up to the next block."""
    return _ZERO_BLOCK[: -size % BLOCK]
