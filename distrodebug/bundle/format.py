"""The dump bundle format, ``distrodebug-bundle/1``, and reading it back (verify).

A bundle is ONE tar archive (pax format), compressed as a whole with zstandard (``.tar.zst``,
level 3), gzip (``.tar.gz``/``.tgz``) or not at all (``.tar``). Readers detect the compression
from the first bytes, not the name. Members, in this order:

``meta/<name>``
    What the caller collected before the filesystem: ``target.json`` (identity), ``inspect.json``,
    ``processes.json``, ``sockets.json``, ``mounts.json``, ``changes.json``, ``environment.json``,
    and, read first because they change, ``runtime-state.json`` (state, normalised events, notes
    on what was cut), ``logs.txt`` and ``logs.previous.txt`` (timestamped, the newest part) and on
    Kubernetes the pod's raw ``events.json``. Secret-looking values are redacted unless
    ``include_secrets``.
``fs/<path>``
    The target's filesystem, paths relative to its root. Directories, regular files, symlinks
    (stored as symlinks, whatever they point at) and hard links (``linkname`` is the ``fs/`` name
    of an earlier regular file). FIFOs, sockets and device nodes are never stored: they are
    recorded in the manifest only, status ``skipped`` (an extract never creates them anyway).
``manifest.json``
    Last, because only then are the hashes known. UTF-8 JSON object::

        format       "distrodebug-bundle/1"
        tool         {"name": "distrodebug", "version": ...}
        created      UTC ISO 8601 time the bundle was finished
        target       identity given by the caller (container id/name, image ref and id,
                     repo digests, entrypoint/cmd, user, labels)
        options      the dump options used
        redactions   how many values were redacted in meta (0 with include_secrets)
        meta         {"meta/<name>": {"sha256": ..., "size": ...}}
        files        {"<name>": {"sha256": ..., "size": ...}}: other binary members, present only
                     when there are some (``memory/PID-COMM.core``, ELF cores of ``dump --memory``)
        stats        counts: entries, files, bytes stored, skipped, partial
        warnings     stream problems worth knowing (resynchronised after a damaged batch...)
        custody      the chain-of-custody record: collector, host, command line, UTC times,
                     clock, target identity, phases in order (see custody.py)
        entries      one object per filesystem entry, one per line:
            path     relative path, no leading "/" (non-UTF-8 bytes as JSON \\udcXX escapes)
            type     file | dir | symlink | hardlink | fifo | char | block | socket | unknown
                     (null for a path the change list says was deleted)
            mode     permission bits as an octal string ("0755", setuid bits kept as found)
            uid, gid, size, mtime (seconds since the epoch)
            sha256   of the stored content (regular files that were stored)
            link     symlink target as found, or the hard link's target path
            device   "major,minor" for char and block devices
            change   added | changed | deleted, where the caller gave a change list
            status   ok | partial | skipped | deleted
            reason   why, when status is not ok

Status ``partial`` means content was stored but is not the whole file (it shrank or the stream
was cut while it was read: the missing tail is zero-filled, size is what the header announced,
sha256 is of what is stored). The bundle **digest** is the sha256 of the exact ``manifest.json``
bytes: the manifest pins every other member's hash, so the digest pins the whole bundle.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import importlib
import importlib.metadata
import json
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

from distrodebug.bundle.options import Compression
from distrodebug.bundle.tar.reader import Member, TarFormatError, TarReader
from distrodebug.errors import BundleDamaged, BundleError

FORMAT = "distrodebug-bundle/1"
FS = "fs/"
META = "meta/"
MANIFEST = "manifest.json"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_GZIP_MAGIC = b"\x1f\x8b"
#: The largest manifest read (about a million entries); what a real dump writes stays below it.
MAX_MANIFEST = 256 << 20


def tool_version() -> str:
    """distrodebug's version: the package attribute, else the installed metadata."""
    with contextlib.suppress(ImportError):
        version = getattr(importlib.import_module("distrodebug"), "__version__", None)
        if isinstance(version, str):
            return version
    try:
        return importlib.metadata.version("distrodebug")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def compression_for(path: str | Path, explicit: Compression | None = None) -> Compression:
    """The compression for an output name: explicit choice, else the extension, else zstandard."""
    if explicit is not None:
        return explicit
    name = str(path).lower()
    if name.endswith((".tar.gz", ".tgz")):
        return "gz"
    if name.endswith(".tar"):
        return "none"
    return "zst"


_READ_ERRORS: tuple[type[BaseException], ...] = (EOFError, zlib.error, gzip.BadGzipFile)


def _is_read_error(exc: BaseException) -> bool:
    # zstandard raises its own ZstdError for corrupt or cut frames.
    return isinstance(exc, _READ_ERRORS) or type(exc).__name__ == "ZstdError"


@contextlib.contextmanager
def open_bundle(path: str | Path) -> Iterator[BinaryIO]:
    """The bundle's tar bytes, decompressed as its first bytes say.

    A stream that ends early or is corrupt, wherever it is read inside the block, becomes
    :class:`BundleDamaged` (exit status 1), never a bare EOFError.
    """
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed by the ExitStack below
    except OSError as exc:
        raise BundleError(f"Cannot open bundle {path}: {exc.strerror}.") from None
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(raw)
            head = raw.peek(4)[:4] if hasattr(raw, "peek") else b""
            if head.startswith(_ZSTD_MAGIC):
                import zstandard

                reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
                stack.enter_context(reader)
                yield cast(BinaryIO, reader)
            elif head.startswith(_GZIP_MAGIC):
                yield cast(BinaryIO, stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb")))
            else:
                yield raw
    except BaseException as exc:
        if not _is_read_error(exc):
            raise
        raise BundleDamaged(f"{path} is truncated or corrupt: {exc}.",
                            "Copy the bundle again from where it was written.") from None


def iter_bundle(stream: BinaryIO, path: str | Path) -> Iterator[tuple[Member, TarReader]]:
    """Members of a bundle stream, translating damage into :class:`BundleDamaged`."""
    reader = TarReader(stream)
    try:
        for member in reader.members():
            yield member, reader
            if reader.eof:
                break
        if reader.eof or not reader.end_blocks:
            # Bundles always end with tar's zero blocks; a cut compressed stream may not say so.
            raise BundleDamaged(f"{path} is truncated: it ends before the end of the archive.",
                                "Copy the bundle again from where it was written.")
    except TarFormatError as exc:
        raise BundleDamaged(f"{path} is not a readable bundle: {exc}.") from None
    except (OSError, EOFError) as exc:
        raise BundleDamaged(f"{path} could not be read: {exc}.") from None
    except Exception as exc:
        if _is_read_error(exc):
            raise BundleDamaged(f"{path} is not a readable bundle: {exc}.") from None
        raise


def read_member(reader: TarReader, member: Member, path: str | Path, limit: int) -> bytes:
    """A member's content, refused when it claims more than ``limit`` bytes (hostile bundles
    can hold gigabytes of zeros in a few kilobytes)."""
    if member.size > limit:
        raise BundleDamaged(
            f"{path}: {member.name} claims {member.size} bytes, more than the {limit >> 20} MiB "
            "distrodebug reads of it; this is not a bundle distrodebug wrote.")
    return b"".join(reader.chunks())


def parse_manifest(data: bytes) -> dict[str, Any]:
    """The manifest as a dict of the documented shape; BundleDamaged when it is not one."""
    try:
        manifest = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise BundleDamaged(f"manifest.json is not valid JSON: {exc}.") from None
    if not isinstance(manifest, dict):
        raise BundleDamaged("manifest.json is not a JSON object.")
    check_format(manifest)
    check_shape(manifest)
    return manifest


def check_format(manifest: dict[str, Any]) -> None:
    fmt = manifest.get("format")
    if fmt != FORMAT:
        raise BundleError(
            f"Unknown bundle format {fmt!r} (this distrodebug reads {FORMAT}).",
            "Use the distrodebug version that wrote the bundle.",
        )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


#: Entry fields and the types they may have (None: the field may be null).
_ENTRY_FIELDS: dict[str, tuple[type, ...]] = {
    "path": (str,), "type": (str, type(None)), "mode": (str,), "uid": (int,), "gid": (int,),
    "size": (int,), "mtime": (int, float), "sha256": (str, type(None)), "link": (str,),
    "device": (str,), "change": (str, type(None)), "status": (str,), "reason": (str, type(None)),
}  # fmt: skip


def check_shape(manifest: dict[str, Any]) -> None:
    """Every field the readers use has the documented type, so nothing downstream trips on a
    hostile manifest; BundleDamaged says which field is wrong."""
    def bad(what: str) -> BundleDamaged:
        return BundleDamaged(f"manifest.json is malformed: {what}.",
                             "This is not a bundle distrodebug wrote, or it was edited.")

    containers: tuple[tuple[str, type], ...] = (
        ("tool", dict), ("target", dict), ("options", dict), ("meta", dict), ("stats", dict),
        ("warnings", list), ("entries", list), ("custody", dict), ("files", dict))
    for key, container in containers:
        if manifest.get(key) is not None and not isinstance(manifest[key], container):
            raise bad(f"'{key}' is not a JSON {'object' if container is dict else 'array'}")
    for key in ("redactions",):
        if manifest.get(key) is not None and not _is_int(manifest[key]):
            raise bad(f"'{key}' is not a number")
    sums = {**(manifest.get("meta") or {}), **(manifest.get("files") or {})}
    for name, meta in sums.items():
        if not isinstance(meta, dict) or not isinstance(meta.get("sha256"), str) \
                or not _is_int(meta.get("size")):
            raise bad(f"meta entry {name!r} is not {{'sha256': ..., 'size': ...}}")
    for i, entry in enumerate(manifest.get("entries") or []):
        if not isinstance(entry, dict):
            raise bad(f"entry {i} is not an object")
        for field_name, kinds in _ENTRY_FIELDS.items():
            value = entry.get(field_name)
            if field_name not in entry or (value is None and type(None) in kinds):
                continue
            if not isinstance(value, kinds) or (isinstance(value, bool)):
                raise bad(f"entry {i}: '{field_name}' is {type(value).__name__}")


@dataclass
class Altered:
    """A member whose content or kind differs from what the manifest says."""

    name: str
    what: str


@dataclass
class VerifyResult:
    """What ``verify`` found; ``ok`` only when nothing is missing, extra or altered."""

    path: str
    digest: str | None = None
    manifest_ok: bool = False
    manifest_error: str = ""
    entries: int = 0
    checked: int = 0
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    altered: list[Altered] = field(default_factory=list)
    #: The manifest's custody record (custody.py), when it has one.
    custody: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.manifest_ok and not (self.missing or self.extra or self.altered)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


@dataclass
class _Seen:
    kind: str
    size: int
    sha256: str | None
    link: str


def verify_bundle(path: str | Path) -> VerifyResult:
    """Stream the bundle once, recompute every hash and compare with its manifest."""
    result = VerifyResult(path=str(path))
    seen: dict[str, _Seen] = {}
    manifest_bytes: bytes | None = None
    with open_bundle(path) as stream:
        for member, reader in iter_bundle(stream, path):
            name = member.name
            if name == MANIFEST and manifest_bytes is None:
                manifest_bytes = read_member(reader, member, path, MAX_MANIFEST)
                continue
            if name in seen or name == MANIFEST:
                result.extra.append(name)
                continue
            digest = hashlib.sha256()
            for chunk in reader.chunks():
                digest.update(chunk)
            link = member.linkname
            if member.kind == "hardlink" and link.startswith(FS):
                link = link[len(FS) :]
            seen[name] = _Seen(
                member.kind,
                reader.content_read,
                digest.hexdigest() if member.kind == "file" else None,
                link,
            )
    if manifest_bytes is None:
        result.manifest_error = "the bundle has no manifest.json"
        result.extra.extend(sorted(seen))
        return result
    result.digest = hashlib.sha256(manifest_bytes).hexdigest()
    try:
        manifest = parse_manifest(manifest_bytes)
    except BundleDamaged as exc:
        result.manifest_error = exc.message
        return result
    result.manifest_ok = True
    result.custody = manifest.get("custody")
    _compare(manifest, seen, result)
    return result


def _compare(manifest: dict[str, Any], seen: dict[str, _Seen], result: VerifyResult) -> None:
    expected: dict[str, dict[str, Any]] = {}
    for name, meta in {**(manifest.get("meta") or {}), **(manifest.get("files") or {})}.items():
        expected[str(name)] = {"type": "file", **meta}
    for entry in manifest.get("entries") or []:
        result.entries += 1
        if entry.get("status") in ("ok", "partial"):
            expected[FS + str(entry.get("path"))] = entry
    for name, want in expected.items():
        got = seen.pop(name, None)
        if got is None:
            result.missing.append(name)
            continue
        result.checked += 1
        problem = _difference(want, got)
        if problem:
            result.altered.append(Altered(name, problem))
    result.extra.extend(sorted(seen))


def _difference(want: dict[str, Any], got: _Seen) -> str:
    if want.get("type") != got.kind:
        return f"type is {got.kind}, manifest says {want.get('type')}"
    if got.kind == "file":
        if want.get("size") != got.size:
            return f"size is {got.size}, manifest says {want.get('size')}"
        if want.get("sha256") != got.sha256:
            return "sha256 differs from the manifest"
    if got.kind in ("symlink", "hardlink") and want.get("link") != got.link:
        return f"link target is {got.link!r}, manifest says {want.get('link')!r}"
    return ""
