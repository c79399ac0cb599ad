"""Extract a bundle's filesystem safely: the bundle may come from a compromised target.

Every check is ours, not tarfile's: names must be relative with no empty, ``.`` or ``..``
component; every parent directory is opened with ``O_NOFOLLOW`` relative to the one before it
(starting at the destination's own descriptor), so no write ever passes through a symlink,
whether the bundle created it or it was already in the destination; files are created with
``O_CREAT|O_EXCL|O_NOFOLLOW``; hard links may only point to regular files this extraction
created; FIFOs and device nodes are never created; setuid, setgid and sticky bits are dropped;
ownership is left to the extracting user unless ``chown`` is asked for. Refused members are
reported, not fatal: the rest of the bundle still extracts, and the result is not ``ok``.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from distrodebug.bundle.format import (
    FS,
    MANIFEST,
    MAX_MANIFEST,
    META,
    iter_bundle,
    open_bundle,
    parse_manifest,
    read_member,
)
from distrodebug.bundle.tar.reader import Member, TarReader
from distrodebug.errors import BundleDamaged, BundleError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class ExtractResult:
    """What was extracted, what was refused and why, and whether the hashes matched."""

    dest: str
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    hardlinks: int = 0
    bytes: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)
    altered: list[str] = field(default_factory=list)
    digest: str | None = None
    manifest_ok: bool = False
    manifest_error: str = ""

    @property
    def ok(self) -> bool:
        """Everything extracted and matched its manifest: nothing refused, altered or unchecked."""
        return self.manifest_ok and not (self.refused or self.altered)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "refused": [{"name": n, "why": w} for n, w in self.refused],
                "ok": self.ok}


class _Refused(Exception):
    pass


def safe_relpath(name: str) -> str:
    """``name`` if it is a clean relative path; raises _Refused with the reason otherwise."""
    if not name:
        raise _Refused("empty name")
    if name.startswith("/"):
        raise _Refused("absolute path")
    if "\0" in name:
        raise _Refused("NUL in name")
    parts = name.rstrip("/").split("/")
    if ".." in parts:
        raise _Refused("'..' in path")
    if any(part in ("", ".") for part in parts):
        raise _Refused("empty or '.' path component")
    return "/".join(parts)


def extract_bundle(
    path: str | Path,
    dest: str | Path,
    force: bool = False,
    *,
    meta_dest: str | Path | None = None,
    chown: bool = False,
) -> ExtractResult:
    """Extract the bundle's ``fs/`` into ``dest`` (and its meta and manifest into ``meta_dest``)."""
    dest = Path(dest)
    result = ExtractResult(dest=str(dest))
    root_fd = _open_dest(dest, force)
    meta_fd = _open_dest(Path(meta_dest), force) if meta_dest is not None else None
    try:
        job = _Extraction(root_fd, meta_fd, result, chown and os.geteuid() == 0)
        job.run(path)
    finally:
        os.close(root_fd)
        if meta_fd is not None:
            os.close(meta_fd)
    return result


def _open_dest(dest: Path, force: bool) -> int:
    try:
        dest.mkdir(parents=True, exist_ok=True)
        fd = os.open(dest, _DIR_FLAGS)
    except OSError as exc:
        raise BundleError(f"Cannot use {dest} as the extraction directory: {exc.strerror}.") from None
    if os.listdir(fd) and not force:
        os.close(fd)
        raise BundleError(
            f"{dest} is not empty; extracting there could mix two filesystems.",
            "Choose an empty directory, or pass --force to extract into it anyway.",
        )
    return fd


class _Extraction:
    def __init__(self, root_fd: int, meta_fd: int | None, result: ExtractResult, chown: bool):
        self.root_fd = root_fd
        self.meta_fd = meta_fd
        self.result = result
        self.chown = chown
        self.hashes: dict[str, str] = {}  # member name -> sha256 of what we wrote
        self.created_files: set[str] = set()
        self.dir_modes: list[tuple[str, int, float]] = []

    def run(self, path: str | Path) -> None:
        manifest: bytes | None = None
        with open_bundle(path) as stream:
            for member, reader in iter_bundle(stream, path):
                if member.name == MANIFEST and manifest is None:
                    manifest = read_member(reader, member, path, MAX_MANIFEST)
                    if self.meta_fd is not None:
                        self._write_flat(self.meta_fd, MANIFEST, manifest)
                elif member.name.startswith(FS):
                    self._fs_member(member, reader)
                elif member.name.startswith(META) and self.meta_fd is not None:
                    data = read_member(reader, member, path, MAX_MANIFEST)
                    self.hashes[member.name] = hashlib.sha256(data).hexdigest()
                    self._write_flat(self.meta_fd, member.name[len(META) :], data)
        # Directory modes last and deepest first, so a read-only directory still got its files.
        for rel, mode, mtime in reversed(self.dir_modes):
            self._finish_dir(rel, mode, mtime)
        if manifest is not None:
            self._check(manifest)
        else:
            self.result.manifest_error = "the bundle has no manifest.json"

    def _fs_member(self, member: Member, reader: TarReader) -> None:
        name = member.name
        try:
            rel = safe_relpath(name[len(FS) :])
            kind = member.kind
            if kind in ("fifo", "char", "block"):
                raise _Refused("FIFOs and device nodes are never created")
            if kind not in ("file", "dir", "symlink", "hardlink"):
                raise _Refused(f"unsupported entry type {member.type!r}")
            parent_fd, leaf = self._parent(rel)
            try:
                if kind == "dir":
                    self._dir(parent_fd, leaf, rel, member)
                elif kind == "file":
                    self._file(parent_fd, leaf, rel, member, reader)
                elif kind == "symlink":
                    self._clear(parent_fd, leaf)
                    os.symlink(member.linkname, leaf, dir_fd=parent_fd)
                    self.result.symlinks += 1
                else:
                    self._hardlink(parent_fd, leaf, member)
            finally:
                os.close(parent_fd)
        except _Refused as why:
            self.result.refused.append((name, str(why)))
        except OSError as exc:
            self.result.refused.append((name, exc.strerror or str(exc)))

    def _parent(self, rel: str) -> tuple[int, str]:
        """A descriptor of ``rel``'s parent reached without following any symlink."""
        *parents, leaf = rel.split("/")
        fd = os.dup(self.root_fd)
        try:
            for part in parents:
                try:
                    nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    os.mkdir(part, 0o755, dir_fd=fd)
                    nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    raise _Refused(f"parent {part!r} is not a directory (a symlink?)") from exc
                os.close(fd)
                fd = nxt
        except BaseException:
            os.close(fd)
            raise
        return fd, leaf

    def _clear(self, parent_fd: int, leaf: str) -> None:
        """Make room for a new entry: only a non-directory that this run did not create goes."""
        try:
            st = os.stat(leaf, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            raise _Refused("a directory is already there")
        os.unlink(leaf, dir_fd=parent_fd)

    def _dir(self, parent_fd: int, leaf: str, rel: str, member: Member) -> None:
        try:
            os.mkdir(leaf, 0o700, dir_fd=parent_fd)
        except FileExistsError:
            st = os.stat(leaf, dir_fd=parent_fd, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                raise _Refused("something that is not a directory is already there") from None
        self.dir_modes.append((rel, member.mode & 0o777, member.mtime))
        self._owner(parent_fd, leaf, member)
        self.result.dirs += 1

    def _file(self, parent_fd: int, leaf: str, rel: str, member: Member, reader: TarReader) -> None:
        if member.name in self.created_files:
            raise _Refused("the bundle holds this file twice")
        self._clear(parent_fd, leaf)
        fd = os.open(leaf, _FILE_FLAGS, 0o600, dir_fd=parent_fd)
        digest = hashlib.sha256()
        try:
            for chunk in reader.chunks():
                digest.update(chunk)
                _write_all(fd, chunk)
                self.result.bytes += len(chunk)
            os.fchmod(fd, member.mode & 0o777)  # never setuid, setgid or sticky
            os.utime(fd, (member.mtime, member.mtime))
            if self.chown:
                os.fchown(fd, member.uid, member.gid)
        finally:
            os.close(fd)
        self.hashes[member.name] = digest.hexdigest()
        self.created_files.add(member.name)
        self.result.files += 1

    def _hardlink(self, parent_fd: int, leaf: str, member: Member) -> None:
        if member.linkname not in self.created_files:
            raise _Refused("hard link to something that is not a file extracted here")
        target_parent, target_leaf = self._parent(safe_relpath(member.linkname[len(FS) :]))
        try:
            self._clear(parent_fd, leaf)
            os.link(
                target_leaf,
                leaf,
                src_dir_fd=target_parent,
                dst_dir_fd=parent_fd,
                follow_symlinks=False,
            )
        finally:
            os.close(target_parent)
        self.result.hardlinks += 1

    def _owner(self, parent_fd: int, leaf: str, member: Member) -> None:
        if self.chown:
            os.chown(leaf, member.uid, member.gid, dir_fd=parent_fd, follow_symlinks=False)

    def _finish_dir(self, rel: str, mode: int, mtime: float) -> None:
        try:
            parent_fd, leaf = self._parent(rel)
        except (_Refused, OSError):
            return
        try:
            fd = os.open(leaf, _DIR_FLAGS, dir_fd=parent_fd)
            try:
                os.fchmod(fd, mode)
                os.utime(fd, (mtime, mtime))
            finally:
                os.close(fd)
        except OSError:
            pass  # a directory replaced meanwhile keeps its mode; it was never written through
        finally:
            os.close(parent_fd)

    def _write_flat(self, dir_fd: int, name: str, data: bytes) -> None:
        try:
            leaf = safe_relpath(name)
            if "/" in leaf:
                raise _Refused("meta files have plain names")
            self._clear(dir_fd, leaf)
            fd = os.open(leaf, _FILE_FLAGS, 0o600, dir_fd=dir_fd)
            try:
                _write_all(fd, data)
            finally:
                os.close(fd)
        except _Refused as why:
            self.result.refused.append((name if name == MANIFEST else META + name, str(why)))

    def _check(self, manifest_bytes: bytes) -> None:
        self.result.digest = hashlib.sha256(manifest_bytes).hexdigest()
        try:
            manifest = parse_manifest(manifest_bytes)
        except BundleDamaged as exc:
            self.result.manifest_error = exc.message
            return
        self.result.manifest_ok = True
        wanted = {
            FS + str(e.get("path")): e.get("sha256")
            for e in manifest.get("entries") or []
            if e.get("type") == "file" and e.get("status") in ("ok", "partial")
        }
        for name, meta in (manifest.get("meta") or {}).items():
            if name in self.hashes:
                wanted[name] = meta.get("sha256")
        for name, got in self.hashes.items():
            if wanted.get(name) != got:
                self.result.altered.append(name)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
