"""The target's filesystem, from its tar stream into the bundle's ``fs/``, one manifest entry per
path.

What is stored: --path, --exclude and --changed-only are applied again here (options.py says
why); a hard link only to a file already stored; FIFOs and device nodes are recorded, never
stored. How: a small file already read in whole is hashed here and gathered for the worker; a
large one is hashed and written on the worker (output.py) in pieces, beside the next socket
reads; a file the stream cut short is zero-filled and marked partial, so the bundle stays
consistent. After the stream, the entries only the sidecar's side channel or the change list
know of are recorded too.
"""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO

from distrodebug.bundle.format import FS
from distrodebug.bundle.manifest import Manifest, entry_head
from distrodebug.bundle.options import (
    DumpOptions,
    SkippedEntry,
    clean_paths,
    compile_excludes,
    in_paths,
    is_excluded,
    normalise_path,
)
from distrodebug.bundle.output import READ_BUFFER, Output, fileno_of
from distrodebug.bundle.tar.reader import Member, TarReader
from distrodebug.bundle.tar.writer import header_block, padding
from distrodebug.errors import BundleError, ExitCode

# Public like output.py's sizes: tests shrink them.
OFFLOAD = 256 << 10  # files from this size on are hashed and written on the worker thread...
PIECE = 512 << 10  # ...in pieces of about this size
_NOT_STORED = {"fifo": "fifo", "char": "device node", "block": "device node"}


class FilesystemCopy:
    """One filesystem stream copied into one bundle, its entries recorded in ``manifest``.

    ``skipped`` is the caller's list of what the sidecar left out; it is read only once the
    stream has ended (a thread may still be appending to it until then).
    """

    def __init__(
        self,
        manifest: Manifest,
        options: DumpOptions,
        fs_prefix: str,
        skipped: list[SkippedEntry | tuple[str, str]],
        tick: Callable[[], None],
    ) -> None:
        self.manifest = manifest
        self.options = options
        self.fs_prefix = fs_prefix
        self.skipped = skipped
        self.tick = tick
        self.paths = clean_paths(options.paths)
        self.excludes = compile_excludes(options.excludes)
        self.filtered = bool(self.paths or self.excludes or options.changed_only)

    def run(self, comp: BinaryIO, raw: BinaryIO, fs_tar: BinaryIO) -> None:
        """Copy ``fs_tar`` into ``comp`` (the bundle's tar, compressed; ``raw`` is the file
        under it), then record the leftovers; BundleError when --path matched nothing."""
        self._filesystem(comp, raw, fs_tar)
        matched = self._matched_paths(self.manifest.seen)
        self._leftovers()
        if self.paths and not matched and not self._matched_paths(
                {s.path for s in self._side_entries() if "No such file" not in s.reason}):
            raise self._nothing_matched()

    def _nothing_matched(self) -> BundleError:
        """Why --path gave nothing: an --exclude that covers it, --changed-only, or no such path."""
        wanted = ", ".join("/" + p for p in self.paths)
        for path in self.paths:
            hiding = [g for g in self.options.excludes if is_excluded(path, compile_excludes((g,)))]
            if hiding:
                return BundleError(
                    f"--path /{path} is left out by --exclude {hiding[0]} (it matches the path "
                    "or a directory above it): no bundle was written.",
                    "Narrow or drop that --exclude.",
                    exit_code=ExitCode.USAGE,
                )
        if self.options.changed_only:
            return BundleError(
                f"Nothing under --path {wanted} differs from the image (--changed-only): no "
                "bundle was written.",
                "Dump without --changed-only to take it as it is.",
                exit_code=ExitCode.USAGE,
            )
        return BundleError(
            f"Nothing in the target matches --path {wanted}: no bundle was written.",
            "Check the path with 'distrodebug exec TARGET -- ls -la PARENT'.",
            exit_code=ExitCode.USAGE,
        )

    def _filesystem(self, comp: BinaryIO, raw: BinaryIO, fs_tar: BinaryIO) -> None:
        out = Output(comp, fileno_of(raw))
        try:
            self._members(out, TarReader(fs_tar, out, READ_BUFFER))
            out.close()
        except BaseException:
            out.abort()
            raise

    def _members(self, out: Output, reader: TarReader) -> None:
        prefix, seen, filtered = self.fs_prefix, self.manifest.seen, self.filtered
        for member in reader.members():
            path = normalise_path(member.name, prefix)
            if path is None:
                self.manifest.add({"path": member.name, "type": member.kind}, "skipped", "unsafe name")
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
            self.manifest.warnings.append(
                f"the filesystem stream was damaged {reader.resyncs} time(s); entries in the"
                " damaged stretch are missing"
            )

    def _matched_paths(self, paths: Iterable[str]) -> bool:
        """True when one of ``paths`` is at or below one of --path (parents do not count)."""
        wants = self.paths
        return bool(wants) and any(p == w or p.startswith(w + "/") for p in paths for w in wants)

    def _side_entries(self) -> Iterator[SkippedEntry]:
        """The side channel's entries, with their paths as the manifest writes them."""
        for item in self.skipped:
            skipped = item if isinstance(item, SkippedEntry) else SkippedEntry(*item)
            path = normalise_path(skipped.path, self.fs_prefix)
            if path:
                yield SkippedEntry(path, skipped.reason, skipped.kind, skipped.size)

    def _wanted(self, path: str) -> bool:
        if self.paths and not in_paths(path, self.paths):
            return False
        if is_excluded(path, self.excludes):
            return False
        if self.options.changed_only and self.manifest.changes.get(path) not in ("added", "changed"):
            return False
        return True

    def _member(self, out: Output, reader: TarReader, member: Member, path: str) -> None:
        kind = member.kind
        if kind == "file":
            self._file(out, reader, member, path)
            return
        mode, uid, gid, mtime = member.mode & 0o7777, member.uid, member.gid, int(member.mtime)
        entry = entry_head(path, kind, mode, uid, gid, 0, mtime)
        name = FS + path
        manifest = self.manifest
        if kind == "dir":
            out.write(header_block(name, tarfile.DIRTYPE, mode, uid, gid, mtime))
            manifest.add(entry, "ok")
        elif kind == "symlink":
            entry["link"] = member.linkname
            out.write(header_block(name, tarfile.SYMTYPE, mode, uid, gid, mtime, 0, member.linkname))
            manifest.add(entry, "ok")
        elif kind == "hardlink":
            target = normalise_path(member.linkname, self.fs_prefix)
            entry["link"] = target if target is not None else member.linkname
            if target is None or not manifest.seen.get(target):
                manifest.add(entry, "skipped", "hard link to a file that was not stored")
                return
            out.write(header_block(name, tarfile.LNKTYPE, mode, uid, gid, mtime, 0, FS + target))
            manifest.add(entry, "ok")
        elif kind in _NOT_STORED:
            if kind != "fifo":
                entry["device"] = f"{member.devmajor},{member.devminor}"
            manifest.add(entry, "skipped", _NOT_STORED[kind])
        else:
            manifest.add(entry, "skipped", f"unsupported tar entry type {member.type!r}")

    def _file(self, out: Output, reader: TarReader, member: Member, path: str) -> None:
        size, mode, uid, gid = member.size, member.mode & 0o7777, member.uid, member.gid
        mtime = int(member.mtime)
        manifest = self.manifest
        if size > self.options.max_file_size:
            entry = entry_head(path, "file", mode, uid, gid, size, mtime)
            manifest.add(entry, "skipped", "larger than the maximum file size")
            return  # the reader skips the content without storing it
        header = header_block(FS + path, tarfile.REGTYPE, mode, uid, gid, mtime, size)
        stats = manifest.stats
        if size < OFFLOAD and (view := reader.whole()) is not None:
            # The common small file, already read in whole: hashed here, gathered for the worker.
            stage = out.stage
            stage += header
            stage += view
            stage += padding(size)
            out.settle()
            stats["bytes"] += size
            stats["files"] += 1
            manifest.add_stored_file(path, mode, uid, gid, size, mtime, hashlib.sha256(view).hexdigest())
            self.tick()
            return
        out.write(header)
        digest = hashlib.sha256()
        if size >= OFFLOAD:
            # Large: hashed and written on the worker, beside the next socket reads.
            for view in reader.views(gather=PIECE):
                out.hash_write(digest, view)
                stats["bytes"] += len(view)
                self.tick()
        else:
            for view in reader.views():
                digest.update(view)
                out.write(view)
                stats["bytes"] += len(view)
            self.tick()
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
        manifest.seen[path] = True
        entry = entry_head(path, "file", mode, uid, gid, size, mtime)
        if size >= OFFLOAD or status != "ok":
            slot = manifest.add(entry, status, reason, final=False)

            def finish() -> None:
                entry["sha256"] = digest.hexdigest()
                manifest.fill(slot, entry, status, reason)

            out.call(finish)
        else:
            entry["sha256"] = digest.hexdigest()
            manifest.add(entry, status, reason)

    def _leftovers(self) -> None:
        """Entries known only from the side channel and the change list."""
        manifest = self.manifest
        for item in self.skipped:
            skipped = item if isinstance(item, SkippedEntry) else SkippedEntry(*item)
            path = normalise_path(skipped.path, self.fs_prefix)
            if not path or path in manifest.seen or not self._wanted(path):
                continue
            entry: dict[str, Any] = {"path": path, "type": skipped.kind}
            if skipped.size is not None:
                entry["size"] = skipped.size
            manifest.add(entry, "skipped", skipped.reason)
        for path, kind in sorted(manifest.changes.items()):
            if kind == "deleted" and path not in manifest.seen and self._wanted_deleted(path):
                manifest.add({"path": path, "type": None}, "deleted")

    def _wanted_deleted(self, path: str) -> bool:
        return (not self.paths or in_paths(path, self.paths)) and not is_excluded(path, self.excludes)
