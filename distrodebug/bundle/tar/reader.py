"""Forward-only tar reading, built for hostile and damaged streams.

Why not ``tarfile`` in ``r|`` mode: it keeps every member in ``TarFile.members`` (memory grows),
and it cannot resynchronise. The sidecar's busybox tar *dies* in the middle of a member when a
file shrinks while it is read ("short read"), leaving fewer content bytes than the header
promised; the next xargs batch then starts at an arbitrary offset. The sidecar script therefore
emits a *marker* member before every batch and at the very end: a zero-size regular file whose
name starts with a random nonce that only the sidecar and this reader know (it is in the first
marker, which the target cannot predict). While handing out member content we scan it for the
nonce (followed by the start of a marker name); a hit means the member was cut short there, even
when the marker runs on into the padding, and the following bytes are the next batch.

Streams without a leading marker (the engine's archive API, bundles we wrote) are read as plain
tar. Header blocks are parsed by :mod:`distrodebug.bundle.tar.header`; writing tar is
:mod:`distrodebug.bundle.tar.writer`.

Content is not copied: the stream is read into large buffers and handed out as memoryviews of
them (:meth:`TarReader.views`), which hashing, writing and compressing accept as they are. The
buffers and the rule that keeps those views valid are :mod:`distrodebug.bundle.tar.source`.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from distrodebug.bundle.tar.header import BLOCK, Fields, parse_block, parse_pax
from distrodebug.bundle.tar.header import ENC as _ENC
from distrodebug.bundle.tar.header import ERRORS as _ERRORS
from distrodebug.bundle.tar.source import Buffers, Source

CHUNK = 1 << 20
MARK_SUFFIX_BATCH = ".distrodebug-batch"
MARK_SUFFIX_END = ".distrodebug-end"
_NONCE_LEN = 32
# What a scan looks for: the nonce and what every marker's name continues with. A longer needle
# lets bytes.find skip further (about a third faster than the nonce alone on random data).
_MARK_PREFIX = ".distrodebug-"
_NEEDLE_LEN = _NONCE_LEN + len(_MARK_PREFIX)
_KEEP = _NEEDLE_LEN - 1  # bytes to keep in view past a piece, so a marker cannot hide in the seam
_MAX_META_HEADER = 1 << 20  # a pax or GNU long-name header larger than this is hostile
_ZERO_BLOCK = bytes(BLOCK)


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


class TarReader:
    """Iterate members of one or more concatenated tar archives, forward only.

    After each member from :meth:`members`, call :meth:`views` or :meth:`chunks` to read its
    content (or do not: the rest is skipped). ``truncated`` then says whether the content
    stopped before ``size`` bytes (the sidecar's tar died, or the stream ended),
    ``content_read`` how many bytes came.
    """

    def __init__(self, stream: BinaryIO, buffers: Buffers | None = None, buffer_size: int = CHUNK) -> None:
        self._src = Source(stream, buffers or Buffers(), buffer_size)
        self._nonce: bytes | None = None  # the needle: nonce and marker prefix, as bytes
        self._nonce_text = ""
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
        src = self._src
        try:
            while True:
                if self._left or self._pad:
                    self._finish_member()
                avail = src.end - src.pos
                if avail < BLOCK:
                    avail = src.fill(BLOCK)
                    if not avail:
                        return
                    if avail < BLOCK:
                        raise TarFormatError(f"stream ends inside a header at byte {src.offset + avail}")
                block = bytes(src.take(BLOCK))
                if block == _ZERO_BLOCK:
                    self.end_blocks = True
                    continue  # end-of-archive blocks between concatenated archives
                self.end_blocks = False
                fields = parse_block(block)
                if fields is None:
                    try:
                        fields = _fields(tarfile.TarInfo.frombuf(block, _ENC, _ERRORS))
                    except tarfile.HeaderError as exc:
                        if self._nonce is None:
                            raise TarFormatError(
                                f"damaged tar header at byte {src.offset - BLOCK}: {exc}"
                            ) from None
                        self._resync()
                        pending_pax, long_name, long_link = {}, None, None
                        continue
                name, kind, size = fields[0], fields[1], fields[5]
                self._start_member(0 if kind in _NO_DATA else size)
                if first:
                    first = False
                    if name.endswith(MARK_SUFFIX_BATCH) and len(name) == _NONCE_LEN + len(MARK_SUFFIX_BATCH):
                        self._nonce_text = name[:_NONCE_LEN]
                        self._nonce = (self._nonce_text + _MARK_PREFIX).encode()
                        self.framed = True
                        continue
                if self._nonce is not None and name.startswith(self._nonce_text):
                    if name.endswith(MARK_SUFFIX_END):
                        self.ended = True
                    continue
                if kind in _PAX_TYPES:
                    records = parse_pax(self._meta_content(size))
                    (global_pax if kind == tarfile.XGLTYPE else pending_pax).update(records)
                    continue
                if kind in _LONG_TYPES:
                    text = self._meta_content(size).split(b"\0", 1)[0].decode(_ENC, _ERRORS)
                    if kind == tarfile.GNUTYPE_LONGNAME:
                        long_name = text
                    else:
                        long_link = text
                    continue
                if global_pax or pending_pax or long_name is not None or long_link is not None:
                    pax = {**global_pax, **pending_pax}
                    pending_pax = {}
                    member = _member(fields, pax, long_name, long_link)
                    long_name = long_link = None
                    if "size" in pax:
                        # The header's size field was a placeholder; the pax value governs the data.
                        self._start_member(0 if kind in _NO_DATA else member.size)
                else:
                    member = Member(
                        name, kind, fields[2], fields[3], fields[4], size, float(fields[6]),
                        fields[7], fields[8], fields[9],
                    )  # fmt: skip
                yield member
        finally:
            src.close()

    def views(self, limit: int = CHUNK, gather: int = 1) -> Iterator[memoryview]:
        """The current member's content as views of the read buffer, stopping at a batch marker.

        Each view stays valid after the next one is read (see :class:`Buffers`); nothing is
        copied. ``gather``: wait for up to this many bytes before handing out a piece (fewer at
        the end of the member or of a read buffer), so pieces are not as small as socket reads.
        """
        src = self._src
        nonce = self._nonce
        least = 1 if nonce is None else _NEEDLE_LEN
        while self._left:
            avail = src.end - src.pos
            want = max(least, min(gather, self._left + self._pad + _KEEP, src.room()))
            if avail < want:
                avail = src.fill(want)
                if not avail:
                    self.truncated = self.eof = True
                    self._left = self._pad = 0
                    return
            size = min(avail, self._left, limit)
            if nonce is not None:
                region = self._left + self._pad
                hit = src.find(nonce, min(avail, region + _KEEP))
                if 0 <= hit < self._left:
                    if not hit:
                        # The member was cut here: the bytes from the nonce on are the next batch.
                        self.truncated = True
                        self._left = self._pad = 0
                        return
                    size = min(hit, limit)
                elif hit >= 0:
                    self._pad = hit - self._left  # the content is whole; its padding was cut
                elif avail < region + _KEEP and not src.exhausted:
                    size = min(size, avail - _KEEP)  # keep a possible nonce start in view
            self._left -= size
            self.content_read += size
            yield src.take(size)

    def whole(self) -> memoryview | None:
        """The current member's content and padding in one go, when they are already read in.

        None when they are not (or a batch marker may be among them): then use :meth:`views`.
        """
        src = self._src
        size, region = self._left, self._left + self._pad
        if self._nonce is None:
            if src.end - src.pos < region:
                return None
        elif src.end - src.pos < region + _KEEP or src.find(self._nonce, region + _KEEP) >= 0:
            return None
        view = src.take(size)
        src.skip(self._pad)
        self._left = self._pad = 0
        self.content_read += size
        return view

    def chunks(self, limit: int = CHUNK) -> Iterator[bytes]:
        """The current member's content as bytes, stopping early at a batch marker."""
        for view in self.views(limit):
            yield bytes(view)

    def _start_member(self, size: int) -> None:
        self._left = size
        self._pad = -size % BLOCK
        self.truncated = False
        self.content_read = 0

    def _finish_member(self) -> None:
        for _ in self.views():
            pass
        if not self._pad:
            return
        src = self._src
        avail = src.fill(self._pad + (_KEEP if self._nonce else 0))
        skip = min(self._pad, avail)
        if self._nonce is not None and (hit := src.find(self._nonce, min(avail, self._pad + _KEEP))) >= 0:
            skip = min(skip, hit)
        src.skip(skip)
        self._pad = 0

    def _meta_content(self, size: int) -> bytes:
        if size > _MAX_META_HEADER:
            raise TarFormatError(f"a tar extended header of {size} bytes is not plausible")
        data = b"".join(self.views())
        if self.truncated:
            raise TarFormatError("stream ends inside a tar extended header")
        return data

    def _resync(self) -> None:
        """Skip damaged bytes up to the next batch marker of a framed stream."""
        assert self._nonce is not None
        self.resyncs += 1
        src = self._src
        src.rewind(BLOCK - 1)  # the marker may start inside the damaged block, but not at its start
        while True:
            avail = src.fill(_NEEDLE_LEN)
            hit = src.find(self._nonce, avail)
            if hit >= 0:
                src.skip(hit)
                return
            if avail < _NEEDLE_LEN:
                src.skip(avail)
                return
            src.skip(avail - _KEEP)


_NO_DATA = {
    tarfile.LNKTYPE,
    tarfile.SYMTYPE,
    tarfile.CHRTYPE,
    tarfile.BLKTYPE,
    tarfile.DIRTYPE,
    tarfile.FIFOTYPE,
}
_PAX_TYPES = {tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE}
_LONG_TYPES = {tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK}


def _fields(info: tarfile.TarInfo) -> Fields:
    return (
        info.name, info.type, info.mode, info.uid, info.gid, info.size, int(info.mtime),
        info.linkname, info.devmajor, info.devminor,
    )  # fmt: skip


def _pax_int(pax: dict[str, str], key: str, default: int) -> int:
    try:
        return int(pax[key]) if key in pax else default
    except ValueError:
        return default


def _member(fields: Fields, pax: dict[str, str], long_name: str | None, long_link: str | None) -> Member:
    name, kind, mode, uid, gid, size, mtime, linkname, devmajor, devminor = fields
    try:
        when = float(pax["mtime"]) if "mtime" in pax else float(mtime)
    except ValueError:
        when = float(mtime)
    return Member(
        name=pax.get("path", long_name if long_name is not None else name),
        type=kind,
        mode=mode,
        uid=_pax_int(pax, "uid", uid),
        gid=_pax_int(pax, "gid", gid),
        size=_pax_int(pax, "size", size),
        mtime=when,
        linkname=pax.get("linkpath", long_link if long_link is not None else linkname),
        devmajor=devmajor,
        devminor=devminor,
    )
