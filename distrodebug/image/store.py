"""Read an image's layers where the local engine keeps them unpacked: Docker's overlay2 layer store.

Why: Docker 20.10 answers ``docker save`` by writing the whole archive to a temporary file inside
the engine before it sends the first byte, so a report read from that stream can never take less
time than ``docker save`` itself. When the engine runs on this machine and we may read its data
root, every layer is already a directory there; walking those directories sees the entries the
archive would hold, and reads no content except the few small files a rule looks into.

Trust: nothing is guessed from paths. The image config is read from the engine's
content-addressed store and its sha256 must be the image ID; each layer's directory is found
through the layer DB under the chain ID worked out from the config's diff IDs, and the layer DB's
own record of the diff ID must agree; the top directory must be the one the engine reported in
``GraphDriver``. Anything else (another driver, a containerd snapshotter, Podman's store, a root
we may not read) gives None, and the caller reads ``docker save`` as before.

Hostile content: the walk never follows a symlink (entries are lstat'ed, only real directories
are entered), a file is opened with O_NOFOLLOW | O_NONBLOCK and read only when the open file is
a regular one. Whiteouts are read as overlayfs writes them: a character device 0/0 deletes the
lower layers' entry of its name, the xattr ``trusted.overlay.opaque=y`` hides a directory's lower
contents. They become the '.wh.' entries the archive would have held, so one scanner serves both.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distrodebug.bundle.tar.reader import Member
from distrodebug.image.layers import Budget, LayerScan, scan_entry

#: The drivers whose layer directories are plain trees with overlayfs whiteouts.
DRIVERS = ("overlay2",)
#: A config larger than this is not one (the store's files are the engine's, but stay bounded).
MAX_CONFIG = 8 << 20
_OPAQUE_XATTR = "trusted.overlay.opaque"


@dataclass
class StoredImage:
    """An image as its layer store holds it: the config, and one directory per layer, lowest
    first, with the size the engine recorded for each (``docker history``'s SIZE)."""

    config: dict[str, Any]
    directories: list[Path]
    sizes: list[int]


def _read_start(path: str | Path, size: int) -> bytes | None:
    """Up to ``size`` bytes from the start of a regular file, never through a symlink and never
    blocking on a FIFO; None when ``path`` is no readable regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        out = bytearray()
        while len(out) < size:
            piece = os.read(fd, min(size - len(out), 1 << 20))
            if not piece:
                break
            out += piece
        return bytes(out)
    except OSError:
        return None
    finally:
        os.close(fd)


def _read_small(path: Path, limit: int) -> bytes | None:
    """A whole file of the store, None when it is larger than ``limit``."""
    data = _read_start(path, limit + 1)
    return data if data is not None and len(data) <= limit else None


def chain_ids(diff_ids: list[str]) -> list[str]:
    """The layer DB's keys: the first diff ID, then sha256 of '<previous chain ID> <diff ID>'."""
    chains: list[str] = []
    for diff_id in diff_ids:
        if not chains:
            chains.append(diff_id)
        else:
            digest = hashlib.sha256(f"{chains[-1]} {diff_id}".encode()).hexdigest()
            chains.append(f"sha256:{digest}")
    return chains


def _hex(digest: str) -> str | None:
    algorithm, _, value = digest.partition(":")
    if algorithm != "sha256" or len(value) != 64 or not all(c in "0123456789abcdef" for c in value):
        return None
    return value


def locate(root: str, driver: str, inspect: dict[str, Any]) -> StoredImage | None:
    """The image's config and layer directories in the store under ``root``, each checked as the
    module says; None when any check fails."""
    if driver not in DRIVERS or not root:
        return None
    image_hex = _hex(str(inspect.get("Id") or ""))
    if image_hex is None:
        return None
    base = Path(root)
    raw = _read_small(base / "image" / driver / "imagedb" / "content" / "sha256" / image_hex, MAX_CONFIG)
    if raw is None or hashlib.sha256(raw).hexdigest() != image_hex:
        return None
    try:
        config = json.loads(raw)
        diff_ids = [str(d) for d in config["rootfs"]["diff_ids"]]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(config, dict) or not diff_ids:
        return None
    directories: list[Path] = []
    sizes: list[int] = []
    for diff_id, chain in zip(diff_ids, chain_ids(diff_ids), strict=True):
        chain_hex = _hex(chain)
        if chain_hex is None:
            return None
        record = base / "image" / driver / "layerdb" / "sha256" / chain_hex
        recorded = _read_small(record / "diff", 200)
        cache_id = _read_small(record / "cache-id", 200)
        size = _read_small(record / "size", 40)
        if recorded is None or recorded.decode(errors="replace").strip() != diff_id or cache_id is None:
            return None
        name = cache_id.decode(errors="replace").strip()
        if not name or "/" in name or name in (".", ".."):
            return None
        directory = base / driver / name / "diff"
        if not directory.is_dir() or directory.is_symlink():
            return None
        directories.append(directory)
        text = size.decode(errors="replace").strip() if size is not None else ""
        sizes.append(int(text) if text.isdigit() else 0)
    reported = ((inspect.get("GraphDriver") or {}).get("Data") or {}).get("UpperDir")
    if reported is not None and Path(str(reported)) != directories[-1]:
        return None
    return StoredImage(config, directories, sizes)


class _FileContent:
    """A regular file of a layer directory, opened only when a rule asks for its start."""

    def __init__(self) -> None:
        self.path = ""

    def read(self, size: int) -> bytes:
        return _read_start(self.path, size) or b""

    def head(self) -> bytes:
        return self.read(8192)


_TYPES = {
    stat.S_IFREG: tarfile.REGTYPE, stat.S_IFDIR: tarfile.DIRTYPE, stat.S_IFLNK: tarfile.SYMTYPE,
    stat.S_IFCHR: tarfile.CHRTYPE, stat.S_IFBLK: tarfile.BLKTYPE, stat.S_IFIFO: tarfile.FIFOTYPE,
}


def _opaque(path: str) -> bool:
    try:
        return os.getxattr(path, _OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def walk(directory: Path) -> Iterator[tuple[Member, str]]:
    """The entries of one layer directory as tar members (and their paths on disk), whiteouts and
    opaque directories as the '.wh.' entries ``docker save`` would write for them."""
    seen: dict[tuple[int, int], str] = {}
    pending = [("", str(directory))]
    while pending:
        relative, path = pending.pop()
        with os.scandir(path) as entries:
            for entry in entries:
                name = f"{relative}/{entry.name}" if relative else entry.name
                info = entry.stat(follow_symlinks=False)
                kind = stat.S_IFMT(info.st_mode)
                if kind == stat.S_IFCHR and info.st_rdev == 0:
                    parent, _, base = name.rpartition("/")
                    whiteout = f"{parent}/.wh.{base}" if parent else f".wh.{base}"
                    yield _member(whiteout, tarfile.REGTYPE, info), ""
                    continue
                linkname = ""
                type_ = _TYPES.get(kind)
                if type_ is None:
                    continue  # a socket: the archive would not hold it either
                if kind == stat.S_IFLNK:
                    linkname = os.readlink(entry.path)
                elif kind == stat.S_IFREG and info.st_nlink > 1:
                    key = (info.st_dev, info.st_ino)
                    first = seen.get(key)
                    if first is None:
                        seen[key] = name
                    else:
                        type_, linkname = tarfile.LNKTYPE, first
                yield _member(name, type_, info, linkname), entry.path
                if kind == stat.S_IFDIR:
                    if _opaque(entry.path):
                        yield _member(f"{name}/.wh..wh..opq", tarfile.REGTYPE, info), ""
                    pending.append((name, entry.path))


def _member(name: str, type_: bytes, info: os.stat_result, linkname: str = "") -> Member:
    regular = type_ == tarfile.REGTYPE and stat.S_ISREG(info.st_mode)
    return Member(name=name, type=type_, mode=stat.S_IMODE(info.st_mode), uid=info.st_uid,
                  gid=info.st_gid, size=info.st_size if regular else 0, mtime=info.st_mtime,
                  linkname=linkname, devmajor=os.major(info.st_rdev), devminor=os.minor(info.st_rdev))


def scan_directory(name: str, directory: Path, budget: Budget, size: int) -> LayerScan:
    """One layer directory scanned as :func:`~distrodebug.image.layers.scan_layer` scans a tar."""
    scan = LayerScan(name)
    content = _FileContent()
    try:
        for member, path in walk(directory):
            content.path = path
            scan_entry(scan, member, content, budget)
    except OSError as exc:
        scan.error = f"unreadable layer directory: {exc.strerror or exc}"
    scan.tar_bytes = size
    return scan


def read_stored(stored: StoredImage, budget: Budget | None = None) -> list[LayerScan]:
    """Every layer of ``stored``, lowest first."""
    budget = budget or Budget()
    diff_ids = [str(d) for d in stored.config["rootfs"]["diff_ids"]]
    return [scan_directory(diff_id, directory, budget, size)
            for diff_id, directory, size in zip(diff_ids, stored.directories, stored.sizes, strict=True)]
