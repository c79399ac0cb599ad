"""Write a dump bundle from a filesystem tar stream: the entry point, and where the bundle lands.

The bundle is written to ``.NAME.partial-XXXXXXXX`` beside the target name, mode 0600 from
creation, fsynced (its writeback is started every 32 MiB on the way, so the last fsync has
little left to wait for), and renamed into place only when complete; ``-``, a terminal, a FIFO
or a socket are written through instead. On any failure the temporary file is removed and
:class:`BundleError` says what happened (Ctrl-C is re-raised after the cleanup).

Beneath, the bundle streams end to end and memory stays flat whatever the size of the
filesystem: content goes from the read buffers to the hash and the file (or compressor) as views,
in pieces of at most 1 MiB, through a handful of recycled buffers; only the manifest's entries
(one short JSON line per entry) and the set of paths seen grow with the count. Large files are
hashed and written on a worker thread (sha256, writes and zstd release the GIL), beside the main
thread's socket reads and tar parsing; the hash is always of exactly the bytes written. The
members and their order are :mod:`distrodebug.bundle.contents` (which holds :class:`DumpInfo`
and :class:`SideFile`, still imported from here), the filesystem copy
:mod:`distrodebug.bundle.fscopy`, the entries :mod:`distrodebug.bundle.manifest`, the worker
:mod:`distrodebug.bundle.output`, the format :mod:`distrodebug.bundle.format`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

from distrodebug.bundle import partials
from distrodebug.bundle.contents import ContentWriter, DumpInfo, Progress, SideFile
from distrodebug.bundle.format import compression_for
from distrodebug.bundle.options import Compression, DumpOptions, SkippedEntry
from distrodebug.bundle.tar.reader import TarFormatError
from distrodebug.errors import BundleError, DistrodebugError, ExitCode, UsageError

__all__ = ["DumpInfo", "DumpResult", "SideFile", "SkippedEntry", "write_bundle"]

_OUT_BUFFER = 64 << 10  # writes from this size on go straight to the file


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
                writer = ContentWriter(cast(BinaryIO, counted), compression, options, info, progress)
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
                writer = ContentWriter(raw, compression, options, info, progress)
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
    stats = writer.manifest.stats
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
        warnings=writer.manifest.warnings,
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
