"""Write a dump bundle from a filesystem tar stream, streaming end to end.

The format is described in :mod:`distrodebug.bundle.format`. Memory stays flat whatever the size of the
filesystem: content goes from the read buffers to the hash and the file (or compressor) as views,
in pieces of at most 1 MiB, through a handful of recycled buffers; only the manifest's entries
(one short JSON line per entry) and the set of paths seen grow with the count. Large files are
hashed and written on a worker thread (sha256, writes and zstd release the GIL), beside the main
thread's socket reads and tar parsing; the hash is always of exactly the bytes written.
The bundle is written to ``.NAME.partial-XXXXXXXX`` beside the target name, mode 0600 from
creation, fsynced (its writeback is started every 32 MiB on the way, so the last fsync has
little left to wait for), and renamed into place only when complete; on any failure the temporary file
is removed and :class:`BundleError` says what happened (Ctrl-C is re-raised after the cleanup).
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import json
import os
import secrets
import stat
import tarfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, cast

from distrodebug.bundle import partials
from distrodebug.bundle.format import FORMAT, FS, MANIFEST, META, compression_for, tool_version
from distrodebug.bundle.options import (
    Compression,
    DumpOptions,
    SkippedEntry,
    clean_paths,
    compile_excludes,
    in_paths,
    is_excluded,
    normalise_path,
)
from distrodebug.bundle.output import READ_BUFFER, Output, fileno_of
from distrodebug.bundle.redact import redact_data, redact_text
from distrodebug.bundle.tar.reader import Member, TarFormatError, TarReader
from distrodebug.bundle.tar.writer import TarWriter, header_block, padding
from distrodebug.errors import BundleError, DistrodebugError, ExitCode, UsageError

__all__ = ["DumpInfo", "DumpResult", "SideFile", "SkippedEntry", "write_bundle"]

Progress = Callable[[int, int], None]
_PROGRESS_INTERVAL = 0.1
# Public like output.py's sizes: tests shrink them.
OFFLOAD = 256 << 10  # files from this size on are hashed and written on the worker thread...
PIECE = 512 << 10  # ...in pieces of about this size
_OUT_BUFFER = 64 << 10  # writes from this size on go straight to the file
MANIFEST_BATCH = 4096  # manifest entries joined and written at a time
_CHANGE_KINDS = ("added", "changed", "deleted")
_NOT_STORED = {"fifo": "fifo", "char": "device node", "block": "device node"}
_JSON = json.JSONEncoder(separators=(", ", ": ")).encode  # one manifest entry per line
_JSON_STRING: Callable[[str], str] = json.encoder.encode_basestring_ascii  # what _JSON uses
# The common entry, a stored regular file, exactly as _JSON writes it, without its per-call cost.
_FILE_LINE = (
    '{"path": %s, "type": "file", "mode": "%04o", "uid": %d, "gid": %d, "size": %d, "mtime": %d,'
    ' "sha256": "%s"%s, "status": "ok"}'
)


@dataclass
class DumpInfo:
    """What the caller knows about the target, besides the filesystem stream.

    ``skipped`` is read only after the filesystem stream has ended, so a thread that parses the
    sidecar's stderr may keep appending to it until then. ``fs_prefix`` is put in front of every
    member name: an archive of ``/var/lib/x`` from the engine names its members ``x/...``, so
    pass ``var/lib`` for it.
    """

    target: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    changes: dict[str, str] | None = None
    skipped: list[SkippedEntry | tuple[str, str]] = field(default_factory=list)
    fs_prefix: str = ""
    #: Called when the manifest is written: the custody record (bundle/custody.py), or None.
    custody: Callable[[], dict[str, Any]] | None = None
    #: Binary files to add after the filesystem (``dump --memory``'s cores): see SideFile.
    side_files: list[SideFile] = field(default_factory=list)
    #: Warnings known before the bundle is written; they open the manifest's list.
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SideFile:
    """A file on local disk stored as the bundle member ``name`` (not under fs/ or meta/),
    copied in pieces and hashed in the manifest's ``files`` like every member."""

    name: str
    path: Path


@dataclass
class DumpResult:
    """The written bundle: where, its digest, and what went into it."""

    path: str
    digest: str
    compression: Compression
    bundle_bytes: int
    entries: int
    files: int
    content_bytes: int
    skipped: int
    partial: int
    redactions: int
    warnings: list[str]
    seconds: float
    #: Where the detached signature was written (dump --sign), else None.
    signature: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def write_bundle(
    out_path: str | Path,
    fs_tar: BinaryIO,
    info: DumpInfo,
    options: DumpOptions,
    progress: Progress | None = None,
) -> DumpResult:
    """Write the bundle to ``out_path`` from the filesystem tar stream ``fs_tar``."""
    if options.changed_only and info.changes is None:
        raise UsageError("A changed-only dump needs the list of changes against the image.")
    out = Path(out_path)
    compression = compression_for(out, options.compression)
    started = time.monotonic()
    through = _write_through(out)
    if through is not None:
        fd, out = through
        try:
            with os.fdopen(fd, "wb", buffering=_OUT_BUFFER, closefd=str(out_path) != "-") as raw:
                counted = _Counted(raw)
                writer = _Writer(cast(BinaryIO, counted), compression, options, info, progress)
                digest = writer.run(fs_tar)
                raw.flush()
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | DistrodebugError) or not isinstance(exc, Exception):
                raise
            raise _as_bundle_error(exc, out) from exc
        size = counted.count
        out = Path(str(out_path))
    else:
        out = Path(os.path.realpath(out)) if out.is_symlink() else out
        tmp = out.parent / f".{out.name}.partial-{secrets.token_hex(4)}"
        # Recorded before it exists: a kill between the two must never leave a partial bundle
        # that cleanup cannot find (a record without its file costs nothing).
        record = partials.register(tmp)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            partials.unregister(record)
            raise BundleError(f"Cannot create {tmp}: {exc.strerror}.") from None
        try:
            with os.fdopen(fd, "wb", buffering=_OUT_BUFFER) as raw:
                writer = _Writer(raw, compression, options, info, progress)
                digest = writer.run(fs_tar)
                raw.flush()
                os.fsync(raw.fileno())
                size = os.fstat(raw.fileno()).st_size
            os.replace(tmp, out)
            _fsync_dir(out.parent)
            partials.unregister(record)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            partials.unregister(record)
            if isinstance(exc, KeyboardInterrupt | DistrodebugError) or not isinstance(exc, Exception):
                raise
            raise _as_bundle_error(exc, out) from exc
        out = Path(str(out_path))
    stats = writer.stats
    return DumpResult(
        path=str(out),
        digest=digest,
        compression=compression,
        bundle_bytes=size,
        entries=stats["entries"],
        files=stats["files"],
        content_bytes=stats["bytes"],
        skipped=stats["skipped"],
        partial=stats["partial"],
        redactions=writer.redactions,
        warnings=writer.warnings,
        seconds=time.monotonic() - started,
    )


class _Counted:
    """A file that counts what is written through it (a pipe has no size to ask for)."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.count = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self.raw.write(data)
        size = len(data) if not isinstance(data, memoryview) else data.nbytes
        self.count += size
        return size

    def flush(self) -> None:
        self.raw.flush()


def _write_through(out: Path) -> tuple[int, Path] | None:
    """An open descriptor for outputs that must be written to, not replaced: '-' (stdout), a
    character device (/dev/null, a terminal), a FIFO or a socket, even behind a symlink.
    None for a regular file or a new name, which get a temporary file and a rename."""
    if str(out) == "-":
        return 1, Path("-")
    try:
        mode = os.stat(out).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BundleError(f"Cannot use {out} for the bundle: {exc.strerror}.") from None
    if stat.S_ISDIR(mode):
        raise BundleError(f"{out} is a directory.", "Name a file such as incident.tar.zst.")
    if stat.S_ISREG(mode):
        return None
    try:
        return os.open(out, os.O_WRONLY | os.O_CLOEXEC), out
    except OSError as exc:
        raise BundleError(f"Cannot write the bundle to {out}: {exc.strerror}.") from None


def _as_bundle_error(exc: BaseException, out: Path) -> BundleError:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return BundleError(
            f"The disk is full: {out} could not be written and nothing was left behind.",
            "Free some space, or narrow the dump with --path, --exclude or --max-file-size.",
        )
    if isinstance(exc, BrokenPipeError):
        return BundleError(f"The reader of {out} went away (broken pipe): no whole bundle was "
                           "written and nothing was left behind.", exit_code=ExitCode.BROKEN_PIPE)
    if isinstance(exc, OSError) and exc.strerror:
        return BundleError(f"Writing {out} failed: {exc.strerror}. Nothing was left behind.")
    if isinstance(exc, TarFormatError):
        return BundleError(f"The filesystem stream from the target is not valid tar: {exc}.")
    return BundleError(f"Writing {out} failed ({type(exc).__name__}: {exc}). Nothing was left behind.")


def _fsync_dir(path: Path) -> None:
    # The rename is only durable once the directory itself is synced.
    with contextlib.suppress(OSError):
        dfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def open_compressor(raw: BinaryIO, compression: Compression, level: int) -> BinaryIO:
    if compression == "zst":
        import zstandard

        # One worker thread overlaps compression with hashing on the main thread; 2 MiB jobs
        # keep its buffers near 20 MiB instead of 55 (measured: same throughput).
        params = zstandard.ZstdCompressionParameters.from_level(level, threads=1, job_size=2 << 20)
        cctx = zstandard.ZstdCompressor(compression_params=params)
        return cast(BinaryIO, cctx.stream_writer(raw, closefd=False))
    if compression == "gz":
        # Level 1: gzip is here for compatibility; higher levels cost 30% more time for ~1% size.
        return cast(BinaryIO, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0))
    return raw


def _tarinfo(name: str, kind: bytes, **fields: Any) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o644
    for key, value in fields.items():
        setattr(info, key, value)
    return info


def _joined(opening: str, entries: list[str], closing: str) -> Iterator[str]:
    """``opening + ",\\n ".join(entries) + closing``, a few thousand entries at a time."""
    yield opening
    for start in range(0, len(entries), MANIFEST_BATCH):
        batch = ",\n ".join(entries[start : start + MANIFEST_BATCH])
        yield ",\n " + batch if start else batch
    yield closing


def _entry_head(path: str, kind: str, mode: int, uid: int, gid: int, size: int, mtime: int) -> dict[str, Any]:
    """The first keys of a manifest entry, in their order."""
    return {
        "path": path, "type": kind, "mode": f"{mode:04o}", "uid": uid, "gid": gid, "size": size,
        "mtime": mtime,
    }  # fmt: skip


class _Writer:
    """One bundle being written; holds the manifest entries and counters."""

    def __init__(
        self,
        raw: BinaryIO,
        compression: Compression,
        options: DumpOptions,
        info: DumpInfo,
        progress: Progress | None,
    ) -> None:
        self.raw = raw
        self.compression = compression
        self.options = options
        self.info = info
        self.progress = progress
        self.entries: list[str] = []
        self.seen: dict[str, bool] = {}  # path -> stored as a regular file (hard link target)
        self.meta_sums: dict[str, dict[str, Any]] = {}
        self.side_sums: dict[str, dict[str, Any]] = {}
        self.stats = {"entries": 0, "files": 0, "bytes": 0, "skipped": 0, "partial": 0}
        self.redactions = 0
        self.warnings: list[str] = list(info.warnings)
        self.changes = {k: v for k, v in (info.changes or {}).items() if v in _CHANGE_KINDS}
        self.changes = {normalise_path(k) or k: v for k, v in self.changes.items()}
        self.paths = clean_paths(options.paths)
        self.excludes = compile_excludes(options.excludes)
        self.filtered = bool(self.paths or self.excludes or options.changed_only)
        self.now = time.time()
        self._last_progress = 0.0

    def run(self, fs_tar: BinaryIO) -> str:
        comp = open_compressor(self.raw, self.compression, self.options.zstd_level)
        tar = TarWriter(comp)
        target = self._redact(self.info.target)
        self._meta(tar, "target.json", target)
        for name, value in self.info.meta.items():
            self._meta(tar, name, value)
        if self.info.changes is not None and "changes.json" not in self.info.meta:
            listing = [{"path": p, "kind": k} for p, k in sorted(self.changes.items())]
            self._meta(tar, "changes.json", listing)
        self._filesystem(comp, fs_tar)
        matched = self._matched_paths(self.seen)
        self._leftovers()
        if self.paths and not matched and not self._matched_paths(
                {s.path for s in self._side_entries() if "No such file" not in s.reason}):
            wanted = ", ".join("/" + p for p in self.paths)
            raise BundleError(
                f"Nothing in the target matches --path {wanted}: no bundle was written.",
                "Check the path with 'distrodebug exec TARGET -- ls -la PARENT'.",
                exit_code=ExitCode.USAGE,
            )
        self._side_files(tar)
        digest = self._manifest(tar, target)
        tar.close()
        if comp is not self.raw:
            comp.close()  # flushes the compressor's last frame; the raw file stays open
        self._tick(force=True)
        return digest

    # -- meta ---------------------------------------------------------------------------------

    def _redact(self, value: Any) -> Any:
        if self.options.include_secrets:
            return value
        redacted, count = redact_data(value)
        self.redactions += count
        return redacted

    def _meta(self, tar: TarWriter, name: str, value: Any) -> None:
        if not name or "/" in name or name in (".", ".."):
            raise UsageError(f"Meta file name {name!r} must be a plain file name.")
        if isinstance(value, bytes | str):
            text = value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value
            if not self.options.include_secrets:
                text, count = redact_text(text)
                self.redactions += count
            data = text.encode("utf-8", "surrogateescape")
        else:
            value = value if name == "target.json" else self._redact(value)
            data = (json.dumps(value, indent=2, default=str) + "\n").encode()
        tar.add_bytes(_tarinfo(META + name, tarfile.REGTYPE, mtime=int(self.now)), data)
        digest = hashlib.sha256(data).hexdigest()
        self.meta_sums[META + name] = {"sha256": digest, "size": len(data)}

    # -- side files (a hook kept apart from the filesystem path) --------------------------------

    def _side_files(self, tar: TarWriter) -> None:
        for side in self.info.side_files:
            if side.name.startswith((FS, META)) or side.name == MANIFEST or ".." in side.name.split("/"):
                raise UsageError(f"Side file name {side.name!r} is reserved or unsafe.")
            with open(side.path, "rb") as source:
                size = os.fstat(source.fileno()).st_size
                tar.begin(_tarinfo(side.name, tarfile.REGTYPE, mtime=int(self.now), size=size, mode=0o600))
                digest, done = hashlib.sha256(), 0
                while done < size and (data := source.read(min(size - done, 1 << 20))):
                    digest.update(data)
                    tar.write(data)
                    done += len(data)
                if tar.end():
                    raise BundleError(f"{side.path} shrank while it was copied into the bundle.")
            self.side_sums[side.name] = {"sha256": digest.hexdigest(), "size": size}
            self.stats["bytes"] += size
            self._tick()

    # -- filesystem -----------------------------------------------------------------------------

    def _filesystem(self, comp: BinaryIO, fs_tar: BinaryIO) -> None:
        out = Output(comp, fileno_of(self.raw))
        try:
            self._members(out, TarReader(fs_tar, out, READ_BUFFER))
            out.close()
        except BaseException:
            out.abort()
            raise

    def _members(self, out: Output, reader: TarReader) -> None:
        prefix, seen, filtered = self.info.fs_prefix, self.seen, self.filtered
        for member in reader.members():
            path = normalise_path(member.name, prefix)
            if path is None:
                self._entry({"path": member.name, "type": member.kind}, "skipped", "unsafe name")
                continue
            if not path or (filtered and not self._wanted(path)):
                continue
            if path in seen:
                continue  # the same path twice (overlapping --path): the first one counts
            self._member(out, reader, member, path)
            if reader.truncated and reader.eof:
                raise BundleError(
                    f"The filesystem stream ended in the middle of /{path}.",
                    "The sidecar or the engine went away during the dump; run it again.",
                )
        if reader.eof and not reader.framed:
            raise BundleError(
                "The filesystem stream ended in the middle of an entry it was skipping.",
                "The sidecar or the engine went away during the dump; run it again.",
            )
        if reader.framed and not reader.ended:
            raise BundleError(
                "The filesystem stream ended before the sidecar said it was complete.",
                "The sidecar or the engine went away during the dump; run it again.",
            )
        if reader.resyncs:
            self.warnings.append(
                f"the filesystem stream was damaged {reader.resyncs} time(s); entries in the"
                " damaged stretch are missing"
            )

    def _matched_paths(self, paths: Iterable[str]) -> bool:
        """True when one of ``paths`` is at or below one of --path (parents do not count)."""
        wants = self.paths
        return bool(wants) and any(p == w or p.startswith(w + "/") for p in paths for w in wants)

    def _side_entries(self) -> Iterator[SkippedEntry]:
        """The side channel's entries, with their paths as the manifest writes them."""
        for item in self.info.skipped:
            skipped = item if isinstance(item, SkippedEntry) else SkippedEntry(*item)
            path = normalise_path(skipped.path, self.info.fs_prefix)
            if path:
                yield SkippedEntry(path, skipped.reason, skipped.kind, skipped.size)

    def _wanted(self, path: str) -> bool:
        if self.paths and not in_paths(path, self.paths):
            return False
        if is_excluded(path, self.excludes):
            return False
        if self.options.changed_only and self.changes.get(path) not in ("added", "changed"):
            return False
        return True

    def _member(self, out: Output, reader: TarReader, member: Member, path: str) -> None:
        kind = member.kind
        if kind == "file":
            self._file(out, reader, member, path)
            return
        mode, uid, gid, mtime = member.mode & 0o7777, member.uid, member.gid, int(member.mtime)
        entry = _entry_head(path, kind, mode, uid, gid, 0, mtime)
        name = FS + path
        if kind == "dir":
            out.write(header_block(name, tarfile.DIRTYPE, mode, uid, gid, mtime))
            self._entry(entry, "ok")
        elif kind == "symlink":
            entry["link"] = member.linkname
            out.write(header_block(name, tarfile.SYMTYPE, mode, uid, gid, mtime, 0, member.linkname))
            self._entry(entry, "ok")
        elif kind == "hardlink":
            target = normalise_path(member.linkname, self.info.fs_prefix)
            entry["link"] = target if target is not None else member.linkname
            if target is None or not self.seen.get(target):
                self._entry(entry, "skipped", "hard link to a file that was not stored")
                return
            out.write(header_block(name, tarfile.LNKTYPE, mode, uid, gid, mtime, 0, FS + target))
            self._entry(entry, "ok")
        elif kind in _NOT_STORED:
            if kind != "fifo":
                entry["device"] = f"{member.devmajor},{member.devminor}"
            self._entry(entry, "skipped", _NOT_STORED[kind])
        else:
            self._entry(entry, "skipped", f"unsupported tar entry type {member.type!r}")

    def _file(self, out: Output, reader: TarReader, member: Member, path: str) -> None:
        size, mode, uid, gid = member.size, member.mode & 0o7777, member.uid, member.gid
        mtime = int(member.mtime)
        if size > self.options.max_file_size:
            entry = _entry_head(path, "file", mode, uid, gid, size, mtime)
            self._entry(entry, "skipped", "larger than the maximum file size")
            return  # the reader skips the content without storing it
        header = header_block(FS + path, tarfile.REGTYPE, mode, uid, gid, mtime, size)
        stats = self.stats
        if size < OFFLOAD and (view := reader.whole()) is not None:
            # The common small file, already read in whole: hashed here, gathered for the worker.
            stage = out.stage
            stage += header
            stage += view
            stage += padding(size)
            out.settle()
            stats["bytes"] += size
            stats["files"] += 1
            stats["entries"] += 1
            self.seen[path] = True
            change = self.changes.get(path) if self.changes else None
            self.entries.append(
                _FILE_LINE
                % (
                    _JSON_STRING(path), mode, uid, gid, size, mtime, hashlib.sha256(view).hexdigest(),
                    f', "change": "{change}"' if change else "",
                )
            )  # fmt: skip
            self._tick()
            return
        out.write(header)
        digest = hashlib.sha256()
        if size >= OFFLOAD:
            # Large: hashed and written on the worker, beside the next socket reads.
            for view in reader.views(gather=PIECE):
                out.hash_write(digest, view)
                stats["bytes"] += len(view)
                self._tick()
        else:
            for view in reader.views():
                digest.update(view)
                out.write(view)
                stats["bytes"] += len(view)
            self._tick()
        status, reason = "ok", None
        missing = size - reader.content_read
        if missing > 0:
            # Keep the bundle consistent: zero-fill what never came, and hash what is stored.
            status = "partial"
            reason = (
                f"the file changed while it was read: {reader.content_read} of"
                f" {size} bytes came, the rest is zero-filled"
            )
            while missing:
                fill = bytes(min(missing, 1 << 20))
                out.hash_write(digest, fill)
                missing -= len(fill)
        out.write(padding(size))
        stats["files"] += 1
        self.seen[path] = True
        entry = _entry_head(path, "file", mode, uid, gid, size, mtime)
        if size >= OFFLOAD or status != "ok":
            slot = self._entry(entry, status, reason, final=False)

            def finish() -> None:
                entry["sha256"] = digest.hexdigest()
                self.entries[slot] = self._line(entry, status, reason)

            out.call(finish)
        else:
            entry["sha256"] = digest.hexdigest()
            self._entry(entry, status, reason)

    def _entry(
        self, entry: dict[str, Any], status: str, reason: str | None = None, final: bool = True
    ) -> int:
        """Record a manifest entry; ``final=False`` keeps its slot empty, to be filled later."""
        self.seen.setdefault(entry["path"], False)
        self.entries.append(self._line(entry, status, reason) if final else "")
        self.stats["entries"] += 1
        if status in ("skipped", "partial"):
            self.stats[status] += 1
        return len(self.entries) - 1

    def _line(self, entry: dict[str, Any], status: str, reason: str | None) -> str:
        change = self.changes.get(entry["path"]) if self.changes else None
        if change:
            entry["change"] = change
        entry["status"] = status
        if reason:
            entry["reason"] = reason
        return _JSON(entry)

    def _leftovers(self) -> None:
        """Entries known only from the side channel and the change list."""
        for item in self.info.skipped:
            skipped = item if isinstance(item, SkippedEntry) else SkippedEntry(*item)
            path = normalise_path(skipped.path, self.info.fs_prefix)
            if not path or path in self.seen or not self._wanted(path):
                continue
            entry: dict[str, Any] = {"path": path, "type": skipped.kind}
            if skipped.size is not None:
                entry["size"] = skipped.size
            self._entry(entry, "skipped", skipped.reason)
        for path, kind in sorted(self.changes.items()):
            if kind == "deleted" and path not in self.seen and self._wanted_deleted(path):
                self._entry({"path": path, "type": None}, "deleted")

    def _wanted_deleted(self, path: str) -> bool:
        return (not self.paths or in_paths(path, self.paths)) and not is_excluded(path, self.excludes)

    def _manifest(self, tar: TarWriter, target: dict[str, Any]) -> str:
        """Write manifest.json, the entries joined a few thousand at a time (no whole copy of
        them in memory); returns its sha256."""
        head = {
            "format": FORMAT,
            "tool": {"name": "distrodebug", "version": tool_version()},
            "created": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "target": target,
            "options": self.options.to_json(),
            "redactions": self.redactions,
            "meta": self.meta_sums,
            "stats": self.stats,
            "warnings": self.warnings,
        }
        if self.info.custody is not None:
            head["custody"] = self.info.custody()
        if self.side_sums:
            head["files"] = self.side_sums
        text = json.dumps(head, indent=1, default=str)
        assert text.endswith("\n}")
        opening, closing = text[:-2] + ',\n "entries": [\n ', "\n ]\n}\n"
        entries = self.entries
        # Every piece is ASCII (json escapes the rest), so characters count bytes.
        size = len(opening) + sum(map(len, entries)) + 3 * max(len(entries) - 1, 0) + len(closing)
        tar.begin(_tarinfo(MANIFEST, tarfile.REGTYPE, mtime=int(self.now), size=size))
        digest = hashlib.sha256()
        for piece in _joined(opening, entries, closing):
            data = piece.encode()
            if len(data) != len(piece):
                raise BundleError("A manifest entry is not ASCII JSON.", "Report this as a bug.")
            digest.update(data)
            tar.write(data)
        tar.end()
        return digest.hexdigest()

    def _tick(self, force: bool = False) -> None:
        if self.progress is None:
            return
        now = time.monotonic()
        if force or now - self._last_progress >= _PROGRESS_INTERVAL:
            self._last_progress = now
            self.progress(self.stats["bytes"], self.stats["files"])
