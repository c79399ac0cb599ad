"""The manifest of a bundle being written: its entries, its counters, and manifest.json last.

Each entry is kept as its finished JSON line, not as a dict, so a dump of a million paths holds
short strings; manifest.json is then written by joining them a few thousand at a time, never as
one copy. What the fields mean is :mod:`distrodebug.bundle.format`'s; what decides each entry is
:mod:`distrodebug.bundle.fscopy`'s.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from distrodebug.bundle.format import MANIFEST
from distrodebug.bundle.options import normalise_path
from distrodebug.bundle.tar.writer import TarWriter, member_info
from distrodebug.errors import BundleError

MANIFEST_BATCH = 4096  # entries joined and written at a time (public: tests shrink it)
_CHANGE_KINDS = ("added", "changed", "deleted")
_JSON = json.JSONEncoder(separators=(", ", ": ")).encode  # one manifest entry per line
_JSON_STRING: Callable[[str], str] = json.encoder.encode_basestring_ascii  # what _JSON uses
# The common entry, a stored regular file, exactly as _JSON writes it, without its per-call cost.
_FILE_LINE = (
    '{"path": %s, "type": "file", "mode": "%04o", "uid": %d, "gid": %d, "size": %d, "mtime": %d,'
    ' "sha256": "%s"%s, "status": "ok"}'
)


def entry_head(path: str, kind: str, mode: int, uid: int, gid: int, size: int, mtime: int) -> dict[str, Any]:
    """The first keys of a manifest entry, in their order."""
    return {
        "path": path, "type": kind, "mode": f"{mode:04o}", "uid": uid, "gid": gid, "size": size,
        "mtime": mtime,
    }  # fmt: skip


def _joined(opening: str, entries: list[str], closing: str) -> Iterator[str]:
    """``opening + ",\\n ".join(entries) + closing``, a few thousand entries at a time."""
    yield opening
    for start in range(0, len(entries), MANIFEST_BATCH):
        batch = ",\n ".join(entries[start : start + MANIFEST_BATCH])
        yield ",\n " + batch if start else batch
    yield closing


class Manifest:
    """The entries and counters of one bundle, as they are recorded."""

    def __init__(self, changes: Mapping[str, str] | None, warnings: list[str]) -> None:
        self.entries: list[str] = []
        self.seen: dict[str, bool] = {}  # path -> stored as a regular file (hard link target)
        self.stats = {"entries": 0, "files": 0, "bytes": 0, "skipped": 0, "partial": 0}
        self.warnings: list[str] = list(warnings)
        self.changes = {k: v for k, v in (changes or {}).items() if v in _CHANGE_KINDS}
        self.changes = {normalise_path(k) or k: v for k, v in self.changes.items()}

    def add(self, entry: dict[str, Any], status: str, reason: str | None = None, final: bool = True) -> int:
        """Record an entry; ``final=False`` keeps its slot empty, for :meth:`fill` later."""
        self.seen.setdefault(entry["path"], False)
        self.entries.append(self._line(entry, status, reason) if final else "")
        self.stats["entries"] += 1
        if status in ("skipped", "partial"):
            self.stats[status] += 1
        return len(self.entries) - 1

    def fill(self, slot: int, entry: dict[str, Any], status: str, reason: str | None) -> None:
        """The entry of a slot :meth:`add` kept empty, once its hash is known."""
        self.entries[slot] = self._line(entry, status, reason)

    def add_stored_file(self, path: str, mode: int, uid: int, gid: int, size: int, mtime: int,
                        sha256: str) -> None:
        """Record a regular file stored whole, the common entry, without a dict or the encoder."""
        self.stats["entries"] += 1
        self.seen[path] = True
        change = self.changes.get(path) if self.changes else None
        self.entries.append(
            _FILE_LINE
            % (
                _JSON_STRING(path), mode, uid, gid, size, mtime, sha256,
                f', "change": "{change}"' if change else "",
            )
        )  # fmt: skip

    def _line(self, entry: dict[str, Any], status: str, reason: str | None) -> str:
        change = self.changes.get(entry["path"]) if self.changes else None
        if change:
            entry["change"] = change
        entry["status"] = status
        if reason:
            entry["reason"] = reason
        return _JSON(entry)

    def write(self, tar: TarWriter, head: dict[str, Any], mtime: int) -> str:
        """Write manifest.json: ``head`` (the fields above the entries, in their order), then the
        entries; returns its sha256, the bundle's digest."""
        text = json.dumps(head, indent=1, default=str)
        assert text.endswith("\n}")
        opening, closing = text[:-2] + ',\n "entries": [\n ', "\n ]\n}\n"
        entries = self.entries
        # Every piece is ASCII (json escapes the rest), so characters count bytes.
        size = len(opening) + sum(map(len, entries)) + 3 * max(len(entries) - 1, 0) + len(closing)
        tar.begin(member_info(MANIFEST, tarfile.REGTYPE, mtime=mtime, size=size))
        digest = hashlib.sha256()
        for piece in _joined(opening, entries, closing):
            data = piece.encode()
            if len(data) != len(piece):
                raise BundleError("A manifest entry is not ASCII JSON.", "Report this as a bug.")
            digest.update(data)
            tar.write(data)
        tar.end()
        return digest.hexdigest()
