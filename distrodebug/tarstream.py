"""Forward-only tar reading and writing, built for hostile and damaged streams.

Why not ``tarfile`` in ``r|`` mode: it keeps every member in ``TarFile.members`` (memory grows),
and it cannot resynchronise. The sidecar's busybox tar *dies* in the middle of a member when a
file shrinks while it is read ("short read"), leaving fewer content bytes than the header
promised; the next xargs batch then starts at an arbitrary offset. The sidecar script therefore
emits a *marker* member before every batch and at the very end: a zero-size regular file whose
name starts with a random nonce that only the sidecar and this reader know (it is in the first
marker, which the target cannot predict). While copying member content we scan for the nonce; a
hit means the member was cut short there, and the following bytes are the next batch.

Streams without a leading marker (the engine's archive API, bundles we wrote) are read as plain
tar. Header blocks are parsed and built by :mod:`distrodebug.tarheader`.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from distrodebug.tarheader import ENC as _ENC
from distrodebug.tarheader import ERRORS as _ERRORS
from distrodebug.tarheader import fast_header, fast_tobuf, parse_pax

BLOCK = 512
CHUNK = 1 << 20
MARK_SUFFIX_BATCH = ".distrodebug-batch"
MARK_SUFFIX_END = ".distrodebug-end"
_NONCE_LEN = 32
_MAX_META_HEADER = 1 << 20  # a pax or GNU long-name header larger than this is hostile


class TarFormatError(Exception):
    """The stream is not tar, or is damaged beyond what we can resynchronise."""


@dataclass
class Member:
    """One tar member header, after pax and GNU long-name records are applied."""

    name: str
    type: bytes
    mode: int
    uid: int
    gid: int
    size: int
    mtime: float
    linkname: str
    devmajor: int
    devminor: int

    @property
    def kind(self) -> str:
        """Our word for the member's type (file, dir, symlink, hardlink, fifo, char, block...)."""
        return _KINDS.get(self.type, "unknown")


_KINDS = {
    tarfile.REGTYPE: "file",
    tarfile.AREGTYPE: "file",
    tarfile.CONTTYPE: "file",
    tarfile.DIRTYPE: "dir",
    tarfile.SYMTYPE: "symlink",
    tarfile.LNKTYPE: "hardlink",
    tarfile.FIFOTYPE: "fifo",
    tarfile.CHRTYPE: "char",
    tarfile.BLKTYPE: "block",
}


class _Source:
    """A forward-only byte source with push-back, so a resync can return bytes it over-read."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._buf = b""
        self._pos = 0  # index into _buf: slicing from a position avoids copying the remainder
        self.offset = 0  # bytes handed out so far, for error messages

    def read_some(self, limit: int) -> bytes:
        """Up to ``limit`` bytes; empty only at end of stream."""
        if self._pos >= len(self._buf):
            self._buf = self._raw.read(max(limit, CHUNK)) or b""
            self._pos = 0
            if len(self._buf) <= limit:
                data, self._buf = self._buf, b""
                self.offset += len(data)
                return data
        data = self._buf[self._pos : self._pos + limit]
        self._pos += len(data)
        self.offset += len(data)
        return data

    def read_exact(self, size: int) -> bytes:
        """Exactly ``size`` bytes, or fewer at end of stream."""
        parts: list[bytes] = []
        left = size
        while left:
            data = self.read_some(left)
            if not data:
                break
            parts.append(data)
            left -= len(data)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def unread(self, data: bytes) -> None:
        self._buf = data + self._buf[self._pos :]
        self._pos = 0
        self.offset -= len(data)


class TarReader:
    """Iterate members of one or more concatenated tar archives, forward only.

    After each member from :meth:`members`, call :meth:`chunks` to read its content (or do not:
    the rest is skipped). ``truncated`` then says whether the content stopped before ``size``
    bytes (the sidecar's tar died, or the stream ended), ``content_read`` how many bytes came.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._src = _Source(stream)
        self._nonce: bytes | None = None
        self._left = 0  # content bytes of the current member not yet read
        self._pad = 0  # padding after the current member's content
        self.truncated = False
        self.eof = False  # the stream itself ended (not a batch marker) inside a member
        self.content_read = 0
        self.framed = False
        self.ended = False  # the framed stream's end marker was seen
        self.end_blocks = False  # the last thing read was an end-of-archive (zero) block
        self.resyncs = 0  # times we had to skip damaged bytes to find the next batch

    def members(self) -> Iterator[Member]:
        """Yield every real member; markers, pax and long-name records are consumed here."""
        global_pax: dict[str, str] = {}
        pending_pax: dict[str, str] = {}
        long_name: str | None = None
        long_link: str | None = None
        first = True
        while True:
            self._finish_member()
            block = self._src.read_exact(BLOCK)
            if not block:
                return
            if len(block) < BLOCK:
                raise TarFormatError(f"stream ends inside a header at byte {self._src.offset}")
            if block.count(0) == BLOCK:
                self.end_blocks = True
                continue  # end-of-archive blocks between concatenated archives
            self.end_blocks = False
            try:
                info = fast_header(block) or tarfile.TarInfo.frombuf(block, _ENC, _ERRORS)
            except tarfile.HeaderError as exc:
                if self._nonce is None:
                    raise TarFormatError(
                        f"damaged tar header at byte {self._src.offset - BLOCK}: {exc}"
                    ) from None
                self._resync(block)
                pending_pax, long_name, long_link = {}, None, None
                continue
            self._start_member(info.size if info.type not in _NO_DATA else 0)
            if first:
                first = False
                if info.name.endswith(MARK_SUFFIX_BATCH) and len(info.name) == _NONCE_LEN + len(
                    MARK_SUFFIX_BATCH
                ):
                    self._nonce = info.name[:_NONCE_LEN].encode()
                    self.framed = True
                    continue
            if self._is_marker(info.name):
                if info.name.endswith(MARK_SUFFIX_END):
                    self.ended = True
                continue
            if info.type in (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE):
                records = parse_pax(self._meta_content(info.size))
                (global_pax if info.type == tarfile.XGLTYPE else pending_pax).update(records)
                continue
            if info.type in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK):
                text = self._meta_content(info.size).split(b"\0", 1)[0].decode(_ENC, _ERRORS)
                if info.type == tarfile.GNUTYPE_LONGNAME:
                    long_name = text
                else:
                    long_link = text
                continue
            pax = {**global_pax, **pending_pax}
            pending_pax = {}
            member = _member(info, pax, long_name, long_link)
            long_name = long_link = None
            if "size" in pax:
                # The header's size field was a placeholder; the pax value governs the data.
                self._start_member(member.size if info.type not in _NO_DATA else 0)
            yield member

    def chunks(self, limit: int = CHUNK) -> Iterator[bytes]:
        """The current member's content in pieces, stopping early at a batch marker."""
        keep = _NONCE_LEN - 1 if self._nonce else 0
        held = b""
        while self._left:
            data = self._src.read_some(min(limit, self._left))
            if not data:
                self.truncated = self.eof = True
                self._left = self._pad = 0
                break
            self._left -= len(data)
            if self._nonce is None:
                self.content_read += len(data)
                yield data
                continue
            data = held + data
            hit = data.find(self._nonce)
            if hit >= 0:
                # The member was cut here: the bytes from the nonce on belong to the next batch.
                self._src.unread(data[hit:])
                self._left = self._pad = 0
                self.truncated = True
                data = data[:hit]
                if data:
                    self.content_read += len(data)
                    yield data
                return
            # Hold back a tail that could be the start of a nonce split across two reads.
            cut = max(len(data) - keep, 0) if self._left else len(data)
            held, data = data[cut:], data[:cut]
            if data:
                self.content_read += len(data)
                yield data
        if held:
            self.content_read += len(held)
            yield held

    def _is_marker(self, name: str) -> bool:
        return self._nonce is not None and name.startswith(self._nonce.decode())

    def _start_member(self, size: int) -> None:
        self._left = size
        self._pad = -size % BLOCK
        self.truncated = False
        self.content_read = 0

    def _finish_member(self) -> None:
        for _ in self.chunks():
            pass
        if self._pad:
            pad = self._src.read_exact(self._pad)
            self._pad = 0
            if self._nonce is not None and (hit := pad.find(self._nonce)) >= 0:
                self._src.unread(pad[hit:])

    def _meta_content(self, size: int) -> bytes:
        if size > _MAX_META_HEADER:
            raise TarFormatError(f"a tar extended header of {size} bytes is not plausible")
        data = b"".join(self.chunks())
        if self.truncated:
            raise TarFormatError("stream ends inside a tar extended header")
        return data

    def _resync(self, block: bytes) -> None:
        """Skip damaged bytes up to the next batch marker of a framed stream."""
        assert self._nonce is not None
        self.resyncs += 1
        data = block
        while True:
            hit = data.find(self._nonce)
            if hit >= 0:
                self._src.unread(data[hit:])
                return
            tail = data[-(_NONCE_LEN - 1) :]
            more = self._src.read_some(CHUNK)
            if not more:
                return
            data = tail + more


_NO_DATA = {
    tarfile.LNKTYPE,
    tarfile.SYMTYPE,
    tarfile.CHRTYPE,
    tarfile.BLKTYPE,
    tarfile.DIRTYPE,
    tarfile.FIFOTYPE,
}


def _pax_int(pax: dict[str, str], key: str, default: int) -> int:
    try:
        return int(pax[key]) if key in pax else default
    except ValueError:
        return default


def _member(
    info: tarfile.TarInfo, pax: dict[str, str], long_name: str | None, long_link: str | None
) -> Member:
    try:
        mtime = float(pax["mtime"]) if "mtime" in pax else float(info.mtime)
    except ValueError:
        mtime = float(info.mtime)
    return Member(
        name=pax.get("path", long_name if long_name is not None else info.name),
        type=info.type,
        mode=info.mode,
        uid=_pax_int(pax, "uid", info.uid),
        gid=_pax_int(pax, "gid", info.gid),
        size=_pax_int(pax, "size", info.size),
        mtime=mtime,
        linkname=pax.get("linkpath", long_link if long_link is not None else info.linkname),
        devmajor=info.devmajor,
        devminor=info.devminor,
    )


class TarWriter:
    """Write pax-format members to a stream: header, content in pieces, padding."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._left = 0
        self._pad = 0

    def begin(self, info: tarfile.TarInfo) -> None:
        """Write the header; for regular files, ``info.size`` content bytes must follow."""
        self._out.write(fast_tobuf(info) or info.tobuf(tarfile.PAX_FORMAT, _ENC, _ERRORS))
        size = info.size if info.isreg() else 0
        self._left = size
        self._pad = -size % BLOCK

    def write(self, data: bytes) -> None:
        if len(data) > self._left:
            raise ValueError("more content than the header announced")
        self._out.write(data)
        self._left -= len(data)

    def end(self) -> int:
        """Finish the member, zero-filling missing content; returns how many bytes were filled."""
        missing = self._left
        while self._left:
            n = min(self._left, CHUNK)
            self._out.write(bytes(n))
            self._left -= n
        if self._pad:
            self._out.write(bytes(self._pad))
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
