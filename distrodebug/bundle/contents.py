"""What goes into a bundle, in its order, through the chosen compressor: ``meta/`` (redacted
unless secrets are wanted), ``fs/`` (:mod:`distrodebug.bundle.fscopy`), side files, and
``manifest.json`` last (:mod:`distrodebug.bundle.manifest`), once every hash is known.

What the caller knows is a :class:`DumpInfo`. Where the bytes land (a temporary file renamed
into place, or a pipe) is :mod:`distrodebug.bundle.writer`'s, which callers import
``DumpInfo`` and ``SideFile`` from.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, cast

from distrodebug.bundle.format import FORMAT, FS, MANIFEST, META, tool_version
from distrodebug.bundle.fscopy import FilesystemCopy
from distrodebug.bundle.manifest import Manifest
from distrodebug.bundle.options import Compression, DumpOptions, SkippedEntry
from distrodebug.bundle.redact import redact_data, redact_text
from distrodebug.bundle.tar.writer import TarWriter, member_info
from distrodebug.errors import BundleError, UsageError

Progress = Callable[[int, int], None]
_PROGRESS_INTERVAL = 0.1


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


class ContentWriter:
    """One bundle's members written to ``raw``; holds the manifest and the counts."""

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
        self.manifest = Manifest(info.changes, info.warnings)
        self.filesystem = FilesystemCopy(self.manifest, options, info.fs_prefix, info.skipped, self._tick)
        self.meta_sums: dict[str, dict[str, Any]] = {}
        self.side_sums: dict[str, dict[str, Any]] = {}
        self.redactions = 0
        self.now = time.time()
        self._last_progress = 0.0

    def run(self, fs_tar: BinaryIO) -> str:
        """Write every member from ``fs_tar`` and what the caller gave; returns the digest."""
        comp = open_compressor(self.raw, self.compression, self.options.zstd_level)
        tar = TarWriter(comp)
        target = self._redact(self.info.target)
        self._meta(tar, "target.json", target)
        for name, value in self.info.meta.items():
            self._meta(tar, name, value)
        if self.info.changes is not None and "changes.json" not in self.info.meta:
            listing = [{"path": p, "kind": k} for p, k in sorted(self.manifest.changes.items())]
            self._meta(tar, "changes.json", listing)
        self.filesystem.run(comp, self.raw, fs_tar)
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
        tar.add_bytes(member_info(META + name, tarfile.REGTYPE, mtime=int(self.now)), data)
        digest = hashlib.sha256(data).hexdigest()
        self.meta_sums[META + name] = {"sha256": digest, "size": len(data)}

    # -- side files (a hook kept apart from the filesystem path) --------------------------------

    def _side_files(self, tar: TarWriter) -> None:
        for side in self.info.side_files:
            if side.name.startswith((FS, META)) or side.name == MANIFEST or ".." in side.name.split("/"):
                raise UsageError(f"Side file name {side.name!r} is reserved or unsafe.")
            with open(side.path, "rb") as source:
                size = os.fstat(source.fileno()).st_size
                tar.begin(member_info(side.name, tarfile.REGTYPE, mtime=int(self.now), size=size, mode=0o600))
                digest, done = hashlib.sha256(), 0
                while done < size and (data := source.read(min(size - done, 1 << 20))):
                    digest.update(data)
                    tar.write(data)
                    done += len(data)
                if tar.end():
                    raise BundleError(f"{side.path} shrank while it was copied into the bundle.")
            self.side_sums[side.name] = {"sha256": digest.hexdigest(), "size": size}
            self.manifest.stats["bytes"] += size
            self._tick()

    # -- manifest -------------------------------------------------------------------------------

    def _manifest(self, tar: TarWriter, target: dict[str, Any]) -> str:
        """Write manifest.json; returns its sha256."""
        head = {
            "format": FORMAT,
            "tool": {"name": "distrodebug", "version": tool_version()},
            "created": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "target": target,
            "options": self.options.to_json(),
            "redactions": self.redactions,
            "meta": self.meta_sums,
            "stats": self.manifest.stats,
            "warnings": self.manifest.warnings,
        }
        if self.info.custody is not None:
            head["custody"] = self.info.custody()
        if self.side_sums:
            head["files"] = self.side_sums
        return self.manifest.write(tar, head, int(self.now))

    def _tick(self, force: bool = False) -> None:
        if self.progress is None:
            return
        now = time.monotonic()
        if force or now - self._last_progress >= _PROGRESS_INTERVAL:
            self._last_progress = now
            stats = self.manifest.stats
            self.progress(stats["bytes"], stats["files"])
