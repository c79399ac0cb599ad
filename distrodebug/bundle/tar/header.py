"""Tar header blocks: fast ustar parse and build with ``struct``, and pax records.

For small files the per-member cost dominates a dump, so plain ustar headers (the busybox tar
and bundle common case) are handled here directly; anything unusual (base-256 numbers, long or
non-ASCII names, odd checksums) returns None and the caller falls back to ``tarfile``.
"""

from __future__ import annotations

import re
import tarfile
import zlib

ENC = "utf-8"
ERRORS = "surrogateescape"


def parse_pax(data: bytes) -> dict[str, str]:
    """Parse pax records ``"<len> <key>=<value>\\n"``; malformed records end the parse."""
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            break
        try:
            length = int(data[pos:space])
        except ValueError:
            break
        record = data[space + 1 : pos + length]
        if length <= 0 or not record.endswith(b"\n") or b"=" not in record:
            break
        key, _, value = record[:-1].partition(b"=")
        out[key.decode(ENC, ERRORS)] = value.decode(ENC, ERRORS)
        pos += length
    return out


_OCTAL_LIMITS = (8**7, 8**11)
# mode, uid, gid, size, mtime and checksum as every common tar writes them: fixed-width octal,
# NUL (or space) terminated. One match replaces six field-by-field parses.
_NUMBERS = re.compile(
    rb"([0-7]{7})[\0 ]([0-7]{7})[\0 ]([0-7]{7})[\0 ]([0-7]{11})[\0 ]([0-7]{11})[\0 ]([0-7]{6})\0 "
)
_NO_DEVICE = (bytes(16), b"0000000\x000000000\x00")
_BLANK_CHKSUM = b" " * 8
BLOCK = 512
_ADLER_MOD = 65521

#: What :func:`parse_block` returns: name, type, mode, uid, gid, size, mtime, linkname,
#: devmajor, devminor.
Fields = tuple[str, bytes, int, int, int, int, int, str, int, int]


def _octal(field: bytes) -> int:
    """An octal number field; ValueError for base-256 or garbage (the slow path handles them)."""
    text = field.split(b"\0", 1)[0].strip()
    return int(text, 8) if text else 0


def _checksum_ok(block: bytes, chksum: int) -> bool:
    """The unsigned header checksum, with the checksum field counted as eight spaces.

    adler32's low half is 1 + (byte sum mod 65521): exact when the sum cannot reach 65521,
    which at most 256 non-zero bytes guarantee (the usual header has about a hundred).
    """
    if BLOCK - block.count(0) <= 256:
        total = (zlib.adler32(block) & 0xFFFF) - 1
        if total < 0:
            total += _ADLER_MOD
    else:
        total = sum(block)
    return chksum == total - sum(block[148:156]) + 256


def parse_block(block: bytes) -> Fields | None:
    """Parse a plain ustar/GNU header block; None when it needs tarfile's careful parser."""
    try:
        numbers = _NUMBERS.fullmatch(block, 100, 156)
        if numbers is not None:
            g = numbers.groups()
            if not _checksum_ok(block, int(g[5], 8)):
                return None
            mode, uid, gid, size, mtime = int(g[0], 8), int(g[1], 8), int(g[2], 8), int(g[3], 8), int(g[4], 8)
        else:
            if not _checksum_ok(block, _octal(block[148:156])):
                return None
            mode, uid, gid, size, mtime = (
                _octal(block[100:108]), _octal(block[108:116]), _octal(block[116:124]),
                _octal(block[124:136]), _octal(block[136:148]),
            )  # fmt: skip
        dev = block[329:345]
        devmajor, devminor = (0, 0) if dev in _NO_DEVICE else (_octal(dev[:8]), _octal(dev[8:]))
    except ValueError:
        return None
    kind = block[156:157]
    end = block.find(b"\0", 0, 100)
    name = block[: 100 if end < 0 else end].decode(ENC, ERRORS)
    if block[345] and block[257:263] == b"ustar\0" and kind not in tarfile.GNU_TYPES:
        end = block.find(b"\0", 345, 500)
        name = block[345 : 500 if end < 0 else end].decode(ENC, ERRORS) + "/" + name
    if kind == tarfile.AREGTYPE and name.endswith("/"):
        kind = tarfile.DIRTYPE
    if kind == tarfile.DIRTYPE:
        name = name.rstrip("/")
    end = block.find(b"\0", 157, 257)
    link = block[157 : 257 if end < 0 else end].decode(ENC, ERRORS) if block[157] else ""
    return name, kind, mode, uid, gid, size, mtime, link, devmajor, devminor


def fast_header(block: bytes) -> tarfile.TarInfo | None:
    """Parse a plain ustar/GNU header; None when anything needs tarfile's careful parser."""
    fields = parse_block(block)
    if fields is None:
        return None
    info = tarfile.TarInfo()
    (info.name, info.type, info.mode, info.uid, info.gid, info.size, info.mtime, info.linkname,
     info.devmajor, info.devminor) = fields  # fmt: skip
    return info


def build_block(
    name: str,
    kind: bytes,
    mode: int,
    uid: int,
    gid: int,
    size: int,
    mtime: int,
    linkname: str = "",
    devmajor: int = 0,
    devminor: int = 0,
) -> bytes | None:
    """A ustar header block when the member fits one exactly; None when it needs pax records."""
    small, big = _OCTAL_LIMITS
    if not (
        0 <= uid < small
        and 0 <= gid < small
        and 0 <= size < big
        and 0 <= mtime < big
        and 0 <= devmajor < small
        and 0 <= devminor < small
        and name.isascii()
        and linkname.isascii()
    ):
        return None
    raw_name, link = name.encode(), linkname.encode()
    if len(raw_name) > 100 or len(link) > 100:
        return None
    block = bytearray(
        b"".join(
            (
                raw_name.ljust(100, b"\0"),
                b"%07o\0%07o\0%07o\0%011o\0%011o\0" % (mode & 0o7777, uid, gid, size, mtime),
                _BLANK_CHKSUM,
                kind,
                link.ljust(100, b"\0"),
                b"ustar\x0000",
                bytes(64),  # user and group names
                b"%07o\0%07o\0" % (devmajor, devminor),
                bytes(167),  # prefix and padding
            )
        )
    )
    block[148:156] = b"%06o\0 " % _byte_sum(block)
    return bytes(block)


def _byte_sum(block: bytearray) -> int:
    # A block we built has fewer than 257 non-zero bytes, so adler32 gives the exact sum.
    if BLOCK - block.count(0) <= 256:
        total = (zlib.adler32(block) & 0xFFFF) - 1
        return total + _ADLER_MOD if total < 0 else total
    return sum(block)


def fast_tobuf(info: tarfile.TarInfo) -> bytes | None:
    """A ustar header when the member fits one exactly; None when it needs pax records."""
    return build_block(
        info.name,
        info.type,
        info.mode,
        info.uid,
        info.gid,
        info.size,
        int(info.mtime),
        info.linkname,
        info.devmajor,
        info.devminor,
    )
