"""What a dump includes: its options, and the path rules shared by the sidecar script and writer.

The same rules are applied twice on purpose: the sidecar script narrows what it streams (less to
read and send), and :func:`distrodebug.bundle.writer.write_bundle` applies them again, because a stopped
container's filesystem comes from the engine's archive API, where no script runs.

Path rules (paths are relative, no leading ``/``; the user writes them with or without one):
- ``paths``: keep an entry when it is one of the paths or below one of them;
- ``excludes``: shell globs; a glob without ``/`` matches an entry's base name anywhere (like
  ``.gitignore``: ``*.log``), a glob with ``/`` matches the whole path from the root
  (``/var/cache/*``); ``*`` also crosses ``/``; an excluded directory excludes everything below;
- ``changed_only``: keep only paths the change list calls added or changed.
"""

from __future__ import annotations

import posixpath
from dataclasses import asdict, dataclass
from fnmatch import fnmatchcase
from typing import Any, Literal

#: Files larger than this are recorded as skipped: 1 GiB keeps a dump of a normal service whole
#: while a sparse or runaway file (a 2 GiB truncate, a full log) cannot stall the dump.
DEFAULT_MAX_FILE_SIZE = 1 << 30

#: ``dump --memory``'s default --memory-limit: the total of process memory put in the bundle.
DEFAULT_MEMORY_LIMIT = 512 << 20

Compression = Literal["zst", "gz", "none"]


@dataclass(frozen=True)
class DumpOptions:
    """How to dump; recorded in the manifest as given."""

    compression: Compression | None = None  # None: from the output file's extension
    paths: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    no_volumes: bool = False
    changed_only: bool = False
    max_file_size: int = DEFAULT_MAX_FILE_SIZE
    include_secrets: bool = False
    zstd_level: int = 3
    #: Also store each process's memory as an ELF core (memory/PID-COMM.core), up to memory_limit.
    memory: bool = False
    memory_limit: int = DEFAULT_MEMORY_LIMIT

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["paths"] = list(self.paths)
        data["excludes"] = list(self.excludes)
        return data


def normalise_path(name: str, prefix: str = "") -> str | None:
    """A tar member name as a clean relative path; ``""`` for the root, None when unsafe.

    Accepts ``./etc/passwd``, ``etc/passwd``, ``/etc/passwd`` and ``etc//passwd/``; a name
    with a ``..`` component is unsafe (it could only come from a hostile or broken stream).
    """
    parts: list[str] = []
    for part in f"{prefix}/{name}".split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            return None
        parts.append(part)
    return "/".join(parts)


def compile_excludes(globs: tuple[str, ...]) -> list[tuple[bool, str]]:
    """Each glob as (anchored, pattern); anchored globs match the whole relative path."""
    out: list[tuple[bool, str]] = []
    for glob in globs:
        glob = glob.strip()
        if not glob:
            continue
        anchored = "/" in glob.rstrip("/")
        out.append((anchored, glob.strip("/") if anchored else glob.rstrip("/")))
    return out


def is_excluded(path: str, excludes: list[tuple[bool, str]]) -> bool:
    """True when ``path`` or one of its parent directories matches an exclude glob."""
    if not excludes or not path:
        return False
    parts = path.split("/")
    for depth in range(1, len(parts) + 1):
        prefix = "/".join(parts[:depth])
        base = parts[depth - 1]
        for anchored, pattern in excludes:
            if fnmatchcase(prefix if anchored else base, pattern):
                return True
    return False


def clean_paths(paths: tuple[str, ...]) -> tuple[str, ...]:
    """User paths as relative paths; the root ("/") means everything, so no narrowing."""
    out: list[str] = []
    for path in paths:
        clean = normalise_path(posixpath.normpath("/" + path))
        if clean is None or clean == "":
            return ()
        out.append(clean)
    return tuple(dict.fromkeys(out))


def in_paths(path: str, paths: tuple[str, ...]) -> bool:
    """True when ``path`` is one of ``paths``, below one, or a parent directory of one."""
    if not paths:
        return True
    for want in paths:
        if path == want or path.startswith(want + "/") or want.startswith(path + "/"):
            return True
    return False


@dataclass
class SkippedEntry:
    """An entry the sidecar left out of the stream itself (too large, unreadable, vanished)."""

    path: str
    reason: str
    kind: str | None = None
    size: int | None = None
