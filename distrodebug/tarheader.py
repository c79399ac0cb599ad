"""Tar header blocks: fast ustar parse and build with ``struct``, and pax records.

For small files the per-member cost dominates a dump, so plain ustar headers (the busybox tar
and bundle common case) are handled here directly; anything unusual (base-256 numbers, long or
non-ASCII names, odd checksums) returns None and the caller falls back to ``tarfile``.
"""

from __future__ import annotations

import struct
import tarfile

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


_USTAR = struct.Struct("100s8s8s8s12s12s8s1s100s6s2s32s32s8s8s155s12s")
_OCTAL_LIMITS = (8**7, 8**11)


def _octal(field: bytes) -> int:
    """An octal number field; ValueError for base-256 or garbage (the slow path handles them)."""
    text = field.split(b"\0", 1)[0].strip()
    return int(text, 8) if text else 0


def fast_header(block: bytes) -> tarfile.TarInfo | None:
    """Parse a plain ustar/GNU header; None when anything needs tarfile's careful parser."""
    try:
        fields = _USTAR.unpack(block)
        chksum = _octal(fields[6])
        if chksum != sum(block[:148]) + 256 + sum(block[156:]):
            return None
        info = tarfile.TarInfo()
        info.mode = _octal(fields[1])
        info.uid = _octal(fields[2])
        info.gid = _octal(fields[3])
        info.size = _octal(fields[4])
        info.mtime = _octal(fields[5])
        info.devmajor = _octal(fields[13])
        info.devminor = _octal(fields[14])
    except ValueError:
        return None
    info.type = fields[7] or tarfile.REGTYPE
    name = fields[0].split(b"\0", 1)[0].decode(ENC, ERRORS)
    prefix = fields[15].split(b"\0", 1)[0]
    if prefix and fields[9] == b"ustar\0" and info.type not in tarfile.GNU_TYPES:
        name = prefix.decode(ENC, ERRORS) + "/" + name
    if info.type == tarfile.AREGTYPE and name.endswith("/"):
        info.type = tarfile.DIRTYPE
    info.name = name.rstrip("/") if info.type == tarfile.DIRTYPE else name
    info.linkname = fields[8].split(b"\0", 1)[0].decode(ENC, ERRORS)
    return info


def fast_tobuf(info: tarfile.TarInfo) -> bytes | None:
    """A ustar header when the member fits one exactly; None when it needs pax records."""
    if not (info.name.isascii() and info.linkname.isascii()):
        return None
    name, link = info.name.encode(), info.linkname.encode()
    small, big = _OCTAL_LIMITS
    if (
        len(name) > 100
        or len(link) > 100
        or not (0 <= info.uid < small and 0 <= info.gid < small and 0 <= info.size < big)
    ):
        return None
    mtime = int(info.mtime)
    if not 0 <= mtime < big or info.devmajor >= small or info.devminor >= small:
        return None
    block = bytearray(
        _USTAR.pack(
            name,
            b"%07o\0" % (info.mode & 0o7777),
            b"%07o\0" % info.uid,
            b"%07o\0" % info.gid,
            b"%011o\0" % info.size,
            b"%011o\0" % mtime,
            b"        ",
            info.type,
            link,
            b"ustar\0",
            b"00",
            b"",
            b"",
            b"%07o\0" % info.devmajor,
            b"%07o\0" % info.devminor,
            b"",
            b"",
        )
    )
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)
