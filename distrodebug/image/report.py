"""`distrodebug image`: did the multi-stage build leave only the application and its runtime?

The image is read from the local engine (never run, never pulled, nothing written to disk): from
its layer store when the engine is on this machine and we may read it
(:mod:`distrodebug.image.store`), else as ``docker save`` streams it
(:mod:`distrodebug.image.archive`). Each layer is scanned on its own
(:mod:`distrodebug.image.layers`), and the findings worked out on the final filesystem: what a
later layer deleted is gone, except secrets, which stay readable in the layer that added them.
Returns a report; never prints.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

from distrodebug.errors import DistrodebugError
from distrodebug.image import rules
from distrodebug.image.archive import ImageFormatError, read_saved
from distrodebug.image.layers import MAX_TRACKED_PATHS, Budget, Candidate, FinalView, LayerScan
from distrodebug.image.rules import Level
from distrodebug.image.store import locate, read_stored

JSON_FIELDS_VERSION = 1
#: Rules about what a layer *contains*: a later deletion does not take the bytes out of the image.
SHIPPED_ANYWAY = {"private-key", "cloud-credentials", "token-file", "git-directory"}
#: Items listed per finding (the rest are counted).
MAX_ITEMS = 100


class ImageSource(Protocol):
    """What ``image`` needs from an engine."""

    endpoint: str

    def local_image(self, ref: str) -> dict[str, Any]: ...

    def save_image(self, image_id: str) -> AbstractContextManager[BinaryIO]: ...

    def server_version(self) -> str: ...

    def layer_store(self) -> tuple[str, str] | None:
        """The engine's data root and storage driver, when it runs on this machine."""
        ...


#: How ``check`` reads the image: the layer store when it can (auto), only the store, only save.
READ_MODES = ("auto", "store", "save")


@dataclass
class Item:
    path: str
    #: 1-based, lowest layer first, as `docker history` lists them bottom-up.
    layer: int
    detail: str = ""


@dataclass
class Finding:
    rule: str
    level: Level
    items: list[Item] = field(default_factory=list)
    #: Items beyond those listed.
    more: int = 0

    @property
    def about(self) -> rules.Rule:
        return rules.RULES[self.rule]

    def to_json(self) -> dict[str, Any]:
        about = self.about
        return {"rule": self.rule, "level": self.level.word, "title": about.title, "why": about.why,
                "fix": about.fix, "count": len(self.items) + self.more,
                "items": [{"path": i.path, "layer": i.layer, "detail": i.detail} for i in self.items]}


@dataclass
class Layer:
    index: int
    instruction: str
    tar_bytes: int
    content_bytes: int
    entries: int
    largest: list[tuple[int, str]]
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "instruction": self.instruction, "size": self.tar_bytes,
                "content_bytes": self.content_bytes, "entries": self.entries,
                "largest": [{"path": p, "size": s} for s, p in self.largest], "error": self.error}


@dataclass
class ImageReport:
    image: str
    id: str
    engine: str
    user: str
    findings: list[Finding]
    layers: list[Layer]
    seconds: float
    notes: list[str] = field(default_factory=list)
    #: "layer store" or "docker save".
    read_from: str = "docker save"

    @property
    def worst(self) -> Level | None:
        return max((f.level for f in self.findings), default=None)

    def fails(self, level: Level | None) -> bool:
        """True when a finding is at ``level`` or above (``--fail-on``)."""
        return level is not None and any(f.level >= level for f in self.findings)

    @property
    def verdict(self) -> str:
        serious = [f.about.title for f in self.findings if f.level >= Level.MEDIUM]
        if not serious:
            return "only the application and its runtime: nothing a distroless image should not have"
        return "not distroless: " + "; ".join(serious)

    def to_json(self) -> dict[str, Any]:
        worst = self.worst
        return {"image": self.image, "id": self.id, "engine": self.engine, "user": self.user,
                "verdict": self.verdict, "worst": worst.word if worst is not None else None,
                "findings": [f.to_json() for f in self.findings],
                "layers": [layer.to_json() for layer in self.layers],
                "seconds": round(self.seconds, 3), "read_from": self.read_from, "notes": self.notes,
                "levels": [level.word for level in Level]}


def check(ref: str, source: ImageSource, budget: Budget | None = None, read: str = "auto") -> ImageReport:
    """Read ``ref`` from the engine and judge it."""
    started = time.monotonic()
    inspect = source.local_image(ref)
    image_id = str(inspect.get("Id") or ref)
    stored = None
    if read != "save":
        where = source.layer_store()
        stored = locate(*where, inspect) if where is not None else None
        if stored is None and read == "store":
            raise DistrodebugError(
                f"Cannot read the image '{ref}' from the engine's layer store: "
                + ("the engine does not run on this machine, or its storage driver is not overlay2."
                   if where is None else f"{where[0]} is not readable here, or does not hold it as "
                   "Docker's overlay2 does."),
                "Run without '--read store' (the image is then read as 'docker save' sends it), "
                "or as a user who may read the engine's data root.")
    if stored is not None:
        scans, config, read_from = read_stored(stored, budget), stored.config, "layer store"
    else:
        read_from = "docker save"
        with source.save_image(image_id) as stream:
            try:
                saved = read_saved(stream, budget)
                scans, config = saved.ordered(image_id)
            except ImageFormatError as exc:
                raise DistrodebugError(
                    f"Cannot read the image '{ref}' as the engine saved it: {exc}.",
                    "Check that 'docker save' of it works; report it if it does.") from None
    try:
        engine = source.server_version()
    except DistrodebugError:
        engine = source.endpoint
    view = FinalView(scans)
    settings = config.get("config") or config.get("Config") or {}
    rule, user = rules.user_findings(str(settings.get("User") or ""), view.passwd())
    findings = _findings(view)
    if rule is not None:
        findings.append(Finding(rule, rules.RULES[rule].level, [Item("USER", 0, user)]))
    findings.sort(key=lambda f: (-f.level, list(rules.RULES).index(f.rule)))
    notes = [f"layer {i + 1}: {scan.error}" for i, scan in enumerate(scans) if scan.error]
    if not view.complete:
        notes.append(f"more than {MAX_TRACKED_PATHS:,} paths or too many symlinks: later layers' "
                     "deletions were not tracked past that point, so a finding may be about a file "
                     "a later layer removed")
    return ImageReport(
        image=ref, id=image_id, engine=engine, user=user, findings=findings,
        layers=_layers(scans, config), seconds=time.monotonic() - started, notes=notes,
        read_from=read_from,
    )


def _findings(view: FinalView) -> list[Finding]:
    found: dict[str, Finding] = {}
    for index, scan in enumerate(view.layers):
        for candidate in scan.candidates:
            detail = _judge(view, index, candidate)
            if detail is None:
                continue
            rule = candidate.rule
            finding = found.setdefault(rule, Finding(rule, rules.RULES[rule].level))
            if len(finding.items) < MAX_ITEMS:
                finding.items.append(Item("/" + candidate.path, index + 1, detail))
            else:
                finding.more += 1
        for rule, count in scan.overflow.items():
            finding = found.setdefault(rule, Finding(rule, rules.RULES[rule].level))
            finding.more += count  # not judged one by one: counted as found
    for finding in found.values():
        finding.items.sort(key=lambda i: (i.path, i.layer))
    return list(found.values())


def _judge(view: FinalView, index: int, candidate: Candidate) -> str | None:
    """The item's detail when the candidate is a finding in the final image, else None."""
    fate, by = view.fate(candidate.path, index)
    if candidate.rule in SHIPPED_ANYWAY:
        if fate == "deleted":
            return f"deleted in layer {by + 1}, but still readable in layer {index + 1}"
        if fate == "replaced":
            return f"replaced in layer {by + 1}; this copy is still readable in layer {index + 1}"
        return "no content shown" if candidate.rule != "git-directory" else "source history"
    if fate != "present":
        return None
    if candidate.kind == "symlink":
        parent = candidate.path.rpartition("/")[0]
        link = candidate.linkname
        target = link if link.startswith("/") else f"{parent}/{link}"
        if view.resolve(target) is None:
            return None  # dangling: nothing runs
        return f"symlink to {candidate.linkname}"
    if candidate.rule in ("setuid", "setgid"):
        owner = f"uid {candidate.uid}" if candidate.rule == "setuid" else f"gid {candidate.gid}"
        return f"mode {candidate.mode & 0o7777:04o}, {owner}"
    if candidate.rule == "world-writable":
        return f"mode {candidate.mode & 0o7777:04o}"
    if candidate.rule == "package-manager" and candidate.path.endswith("__init__.py"):
        return "pip as a module: 'python -m pip install' works"
    if candidate.kind == "hardlink":
        return f"hard link to /{candidate.linkname.lstrip('./')}"
    return ""


def _layers(scans: list[LayerScan], config: dict[str, Any]) -> list[Layer]:
    history = [h for h in config.get("history") or [] if isinstance(h, dict) and not h.get("empty_layer")]
    steps = [instruction(h) for h in history] if len(history) == len(scans) else [""] * len(scans)
    return [
        Layer(i + 1, steps[i], scan.tar_bytes, scan.content_bytes, scan.entries,
              sorted(scan.largest, reverse=True), scan.error)
        for i, scan in enumerate(scans)
    ]


def instruction(entry: dict[str, Any]) -> str:
    """A history entry as the Dockerfile line that made it ('RUN make', 'COPY file:... in /app')."""
    text = str(entry.get("created_by") or "").strip()
    if not text:
        return str(entry.get("comment") or "").strip()
    text = text.removesuffix("# buildkit").strip()
    if text.startswith("|"):  # BuildKit's "|2 A=1 B=2 /bin/sh -c ...": the build args come first
        words = text.split(" ")
        count = words[0][1:]
        text = " ".join(words[1 + int(count):]) if count.isdigit() else text
    text = text.removeprefix("/bin/sh -c #(nop) ").strip()
    for shell in ("/bin/sh -c ", "RUN /bin/sh -c "):
        if text.startswith(shell):
            text = "RUN " + text[len(shell):]
    return text
