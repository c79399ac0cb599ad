"""One pass over each layer's tar, and the image's final filesystem worked out from all of them.

``docker save`` writes layers in an order of its own (Docker 20.10 sorts them by a v1 ID; the
manifest that gives their real order comes last), so each layer is scanned on its own into a
:class:`LayerScan` and the layers are put in order only at the end, by :class:`FinalView`.

A scan keeps no content. Per layer it keeps the *candidates* (entries a rule may be about: tools,
setuid and setgid files, world-writable directories, secrets, /etc/passwd), the largest files, and
one 64-bit hash per path (plus hashes of whiteouts, opaque directories and non-directories) so a
later layer's deletions and replacements can be applied to an earlier layer's candidates. Memory
grows with the number of paths (about 70 bytes each), never with file sizes; past
:data:`MAX_TRACKED_PATHS` the hashes stop and the report says deletions may be missed.
"""

from __future__ import annotations

import heapq
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from distrodebug.bundle.tar.reader import Member, TarReader
from distrodebug.image import rules

#: Paths whose hashes are kept across all layers (about 70 MB at most).
MAX_TRACKED_PATHS = 1_000_000
#: Symlinks whose targets are kept across all layers.
MAX_SYMLINKS = 100_000
#: Candidates kept per rule per layer; more are counted, not kept.
MAX_CANDIDATES = 200
#: Largest files listed per layer.
LARGEST = 5
#: Files up to this size are read (into memory, one at a time) to look for private keys.
KEY_SNIFF_MAX = 1 << 20
PASSWD_MAX = 1 << 20
_WHITEOUT = ".wh."
_OPAQUE = ".wh..wh..opq"


def normalize(name: str) -> str:
    """A tar member name as a path without leading '/' or './', '..' resolved inside the root."""
    path = posixpath.normpath("/" + name).lstrip("/")
    return "" if path == "." else path


@dataclass
class Candidate:
    """An entry some rule is about, as found in one layer."""

    rule: str
    path: str
    kind: str
    mode: int
    uid: int
    gid: int
    size: int
    linkname: str = ""


@dataclass
class LayerScan:
    """What one layer holds, as far as the rules are concerned."""

    name: str
    tar_bytes: int = 0
    content_bytes: int = 0
    entries: int = 0
    candidates: list[Candidate] = field(default_factory=list)
    #: Candidates beyond MAX_CANDIDATES, per rule: counted only.
    overflow: dict[str, int] = field(default_factory=dict)
    largest: list[tuple[int, str]] = field(default_factory=list)  # a min-heap of (size, path)
    paths: set[int] = field(default_factory=set)
    nondirs: set[int] = field(default_factory=set)
    whiteouts: set[int] = field(default_factory=set)
    opaque: set[int] = field(default_factory=set)
    #: Every symlink in the layer (path -> target), to resolve a tool's link in the final view.
    symlinks: dict[str, str] = field(default_factory=dict)
    passwd: bytes | None = None
    git_dirs: set[str] = field(default_factory=set)
    tracking: bool = True
    error: str = ""
    _kept: dict[str, int] = field(default_factory=dict)

    def add(self, candidate: Candidate) -> None:
        rule = candidate.rule
        if self._kept.get(rule, 0) >= MAX_CANDIDATES:
            self.overflow[rule] = self.overflow.get(rule, 0) + 1
            return
        self._kept[rule] = self._kept.get(rule, 0) + 1
        self.candidates.append(candidate)


class Budget:
    """The path hashes all layers may keep between them."""

    def __init__(self, limit: int = MAX_TRACKED_PATHS, symlinks: int = MAX_SYMLINKS) -> None:
        self.left = limit
        self.symlinks_left = symlinks

    def take(self) -> bool:
        self.left -= 1
        return self.left >= 0

    def take_symlink(self) -> bool:
        self.symlinks_left -= 1
        return self.symlinks_left >= 0


class Content(Protocol):
    """The start of the entry being scanned, read only when a rule asks for it."""

    def head(self) -> memoryview | bytes:
        """Up to the first 8 KiB (a private key's marker is in them)."""
        ...

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes from the start."""
        ...


class _TarContent:
    """The current member of a layer's tar."""

    def __init__(self, reader: TarReader) -> None:
        self._reader = reader

    def head(self) -> memoryview | bytes:
        # Without copying when the bytes are already read in.
        for view in self._reader.views(limit=8192):
            return view
        return b""

    def read(self, size: int) -> bytes:
        out = bytearray()
        for view in self._reader.views(limit=max(size, 1)):
            out += view[: size - len(out)]
            if len(out) >= size:
                break
        return bytes(out)


def scan_layer(name: str, reader: TarReader, budget: Budget) -> LayerScan:
    """Read one layer's tar (content is read only for small secret candidates, never kept)."""
    scan = LayerScan(name)
    content = _TarContent(reader)
    for member in reader.members():
        scan_entry(scan, member, content, budget)
    return scan


def scan_entry(scan: LayerScan, member: Member, content: Content, budget: Budget) -> None:
    """Add one entry of a layer, in tar's terms (whiteouts as '.wh.' names), to its scan."""
    path = normalize(member.name)
    if not path:
        return
    scan.entries += 1
    parent, _, base = path.rpartition("/")
    if base.startswith(_WHITEOUT):
        # A whiteout deletes the lower layers' file; an opaque marker hides the lower layers'
        # contents of its directory. Neither is a file of the image.
        if scan.tracking:
            if base == _OPAQUE:
                scan.opaque.add(hash(parent))
            else:
                scan.whiteouts.add(hash(f"{parent}/{base[len(_WHITEOUT):]}".lstrip("/")))
        return
    kind = member.kind
    if scan.tracking:
        if budget.take():
            scan.paths.add(hash(path))
            if kind != "dir":
                scan.nondirs.add(hash(path))
        else:
            scan.tracking = False
    git = rules.git_directory(path)
    if git is not None and git not in scan.git_dirs and len(scan.git_dirs) < MAX_CANDIDATES:
        scan.git_dirs.add(git)
        scan.add(Candidate("git-directory", git, "dir", 0, 0, 0, 0))
    mode = member.mode
    if kind == "dir":
        if mode & 0o002 and not mode & 0o1000:
            scan.add(Candidate("world-writable", path, kind, mode, member.uid, member.gid, 0))
        return
    if kind == "symlink":
        if scan.tracking and budget.take_symlink():
            scan.symlinks[path] = member.linkname
        else:
            scan.tracking = False
        tool = rules.tool_rule(path)
        if tool is not None:
            scan.add(Candidate(tool, path, kind, mode, member.uid, member.gid, 0, member.linkname))
        return
    if kind not in ("file", "hardlink"):
        return
    size = member.size if kind == "file" else 0
    scan.content_bytes += size
    if size:
        if len(scan.largest) < LARGEST:
            heapq.heappush(scan.largest, (size, path))
        elif (size, path) > scan.largest[0]:  # ties by path: the same five whatever the order
            heapq.heapreplace(scan.largest, (size, path))
    meta = (kind, mode, member.uid, member.gid, size)
    if mode & 0o111:
        tool = rules.tool_rule(path)
        if tool is not None:
            scan.add(Candidate(tool, path, *meta, member.linkname))
    if mode & 0o4000:
        scan.add(Candidate("setuid", path, *meta, member.linkname))
    elif mode & 0o2000:
        scan.add(Candidate("setgid", path, *meta, member.linkname))
    if rules.pip_module(path):
        scan.add(Candidate("package-manager", path, *meta))
    if kind != "file":
        return
    check = rules.secret_check(path)
    if path == "etc/passwd" and size <= PASSWD_MAX:
        scan.passwd = content.read(size)
    elif check is not None:
        head = content.read(min(size, rules.SNIFF_BYTES)) if check.needs is not None else b""
        if rules.content_matches(check, head):
            scan.add(Candidate(check.rule, path, *meta))
    elif 0 < size <= KEY_SNIFF_MAX and rules.holds_private_key(content.head()):
        scan.add(Candidate("private-key", path, *meta))


# -- the final filesystem -----------------------------------------------------------------------


def _ancestors(path: str) -> Iterator[str]:
    while "/" in path:
        path = path.rpartition("/")[0]
        yield path
    yield ""


class FinalView:
    """The layers in order (lowest first), and what is left of each entry at the top."""

    def __init__(self, layers: list[LayerScan]) -> None:
        self.layers = layers
        self.complete = all(layer.tracking for layer in layers)

    def fate(self, path: str, index: int) -> tuple[str, int]:
        """What later layers did to ``path`` of layer ``index``: ('present', -1), or
        ('deleted' | 'replaced', the layer that did it)."""
        key = hash(path)
        ancestors = [hash(a) for a in _ancestors(path)]
        for later in range(index + 1, len(self.layers)):
            layer = self.layers[later]
            if key in layer.whiteouts or any(a in layer.whiteouts or a in layer.opaque
                                             for a in ancestors):
                return "deleted", later
            if key in layer.paths:
                return "replaced", later
            if any(a in layer.nondirs for a in ancestors[:-1]):
                return "deleted", later  # a parent directory became a file or a symlink
        return "present", -1

    def exists(self, path: str) -> bool:
        """Is there an entry at ``path`` (symlinks not followed) in the final filesystem?"""
        if not path:
            return True
        key = hash(path)
        for index in range(len(self.layers) - 1, -1, -1):
            if key in self.layers[index].paths:
                return self.fate(path, index)[0] == "present"
        return False

    def symlink(self, path: str) -> str | None:
        """The target of ``path`` if it is a symlink in the final filesystem."""
        for index in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[index]
            if path in layer.symlinks:
                return layer.symlinks[path] if self.fate(path, index)[0] == "present" else None
            if hash(path) in layer.paths:
                return None
        return None

    def resolve(self, path: str, hops: int = 40) -> str | None:
        """``path`` with every symlink on the way followed inside the image's root, or None when
        it leads nowhere (dangling, a loop)."""
        parts = [p for p in path.split("/") if p]
        done: list[str] = []
        while parts:
            part = parts.pop(0)
            if part == "..":
                if done:
                    done.pop()
                continue
            if part == ".":
                continue
            current = "/".join([*done, part])
            target = self.symlink(current)
            if target is None:
                # Parent directories need not have entries of their own in a layer's tar; the
                # last component must exist (its fate covers deleted parents).
                if not parts and not self.exists(current):
                    return None
                done.append(part)
                continue
            hops -= 1
            if hops < 0:
                return None
            if target.startswith("/"):
                done = []
            parts = [p for p in target.split("/") if p] + parts
        return "/".join(done)

    def passwd(self) -> bytes | None:
        """The final /etc/passwd, if the image has one."""
        for index in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[index]
            if layer.passwd is not None:
                return layer.passwd if self.fate("etc/passwd", index)[0] == "present" else None
            if hash("etc/passwd") in layer.paths:
                return None
        return None
