"""Summaries of a bundle for incident review: plain data for the terminal, one HTML page.

:func:`summarize_bundle` reads the bundle once (meta and manifest; file contents are skipped) and
returns a :class:`Summary` of plain fields the CLI renders with rich. :func:`render_html` makes
one self-contained page: inline CSS, no script, no external resource, and a Content-Security-Policy
that forbids them anyway. Every value is escaped: file names, command lines and labels come from
a possibly hostile target.
"""

from __future__ import annotations

import hashlib
import heapq
import html
import json
import shlex
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from distrodebug.bundle.format import (
    MANIFEST,
    MAX_MANIFEST,
    META,
    iter_bundle,
    open_bundle,
    parse_manifest,
    read_member,
)
from distrodebug.bundle.timeline import Timeline
from distrodebug.bundle.timeline_html import TIMELINE_CSS, timeline_section
from distrodebug.errors import BundleDamaged

#: Lists longer than this are cut in the summary (the totals say how many there were).
LIST_LIMIT = 1000
LARGEST = 20
#: The meta members the summary shows, and how much of them it reads at most, all together.
_SHOWN_META = ("processes.json", "sockets.json", "mounts.json", "runtime-state.json", "logs.txt",
               "logs.previous.txt")
_MAX_META = 64 << 20


@dataclass
class FileRow:
    """One filesystem entry as the summary shows it."""

    path: str
    type: str | None
    size: int
    status: str
    change: str | None = None
    reason: str | None = None
    sha256: str | None = None
    mode: str | None = None


@dataclass
class Summary:
    """Everything ``report`` shows, as plain fields."""

    path: str
    digest: str
    format: str
    tool_version: str
    created: str
    target: dict[str, Any]
    options: dict[str, Any]
    redactions: int
    entries: int = 0
    content_bytes: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    by_status: dict[str, int] = field(default_factory=dict)
    by_change: dict[str, int] = field(default_factory=dict)
    changed: list[FileRow] = field(default_factory=list)
    largest: list[FileRow] = field(default_factory=list)
    skipped: list[FileRow] = field(default_factory=list)
    processes: list[dict[str, Any]] = field(default_factory=list)
    listening: list[dict[str, Any]] = field(default_factory=list)
    connections: list[dict[str, Any]] = field(default_factory=list)
    mounts: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: The manifest's chain-of-custody record (custody.py), when it has one.
    custody: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Loaded:
    """A bundle read once for the report and the timeline: its manifest and the meta they show."""

    path: str
    manifest_bytes: bytes
    manifest: dict[str, Any]
    meta: dict[str, bytes]


def load_bundle(path: str | Path) -> Loaded:
    """Read the manifest and the meta members the report and the timeline use (contents skipped)."""
    meta: dict[str, bytes] = {}
    manifest_bytes: bytes | None = None
    budget = _MAX_META
    with open_bundle(path) as stream:
        for member, reader in iter_bundle(stream, path):
            name = member.name[len(META) :] if member.name.startswith(META) else ""
            if member.name == MANIFEST and manifest_bytes is None:
                manifest_bytes = read_member(reader, member, path, MAX_MANIFEST)
            elif name in _SHOWN_META and name not in meta:
                meta[name] = read_member(reader, member, path, budget)
                budget -= len(meta[name])
    if manifest_bytes is None:
        raise BundleDamaged(f"{path} has no manifest.json; it is not a complete bundle.")
    return Loaded(str(path), manifest_bytes, parse_manifest(manifest_bytes), meta)


def summarize_bundle(path: str | Path, loaded: Loaded | None = None) -> Summary:
    """Read the bundle's manifest and meta into a :class:`Summary` (``loaded``: already read)."""
    loaded = loaded or load_bundle(path)
    manifest_bytes, manifest, meta = loaded.manifest_bytes, loaded.manifest, loaded.meta
    summary = Summary(
        path=str(path),
        digest=hashlib.sha256(manifest_bytes).hexdigest(),
        format=str(manifest.get("format")),
        tool_version=str((manifest.get("tool") or {}).get("version", "")),
        created=str(manifest.get("created", "")),
        target=dict(manifest.get("target") or {}),
        options=dict(manifest.get("options") or {}),
        redactions=int(manifest.get("redactions") or 0),
        warnings=[str(w) for w in manifest.get("warnings") or []],
        custody=manifest.get("custody"),
    )
    _entries(summary, manifest.get("entries") or [])
    summary.processes = [_process(p) for p in _json_list(meta.get("processes.json"))]
    sockets = [_socket(s) for s in _json_list(meta.get("sockets.json"))]
    summary.listening = [s for s in sockets if s.get("state") == "LISTEN"]
    summary.connections = [
        s for s in sockets if s.get("state") not in ("LISTEN", "CLOSE") and s.get("proto") != "unix"
    ]
    summary.mounts = _json_list(meta.get("mounts.json"))
    return summary


def _json_list(data: bytes | None) -> list[dict[str, Any]]:
    if not data:
        return []
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return []
    if isinstance(value, dict):  # tolerate {"processes": [...]} as well as a bare list
        value = next((v for v in value.values() if isinstance(v, list)), [])
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _process(proc: dict[str, Any]) -> dict[str, Any]:
    """A process record with the list fields the renderers walk made safe to walk."""
    cmdline, fds = proc.get("cmdline"), proc.get("fds")
    return {**proc, "cmdline": [str(a) for a in cmdline] if isinstance(cmdline, list) else [],
            "fds": fds if isinstance(fds, list) else []}


def _socket(sock: dict[str, Any]) -> dict[str, Any]:
    owners = sock.get("processes")
    return {**sock, "processes": [p for p in owners if isinstance(p, dict)]
            if isinstance(owners, list) else []}


def _row(entry: dict[str, Any]) -> FileRow:
    return FileRow(
        path=str(entry.get("path", "")),
        type=entry.get("type"),
        size=int(entry.get("size") or 0),
        status=str(entry.get("status", "")),
        change=entry.get("change"),
        reason=entry.get("reason"),
        sha256=entry.get("sha256"),
        mode=entry.get("mode"),
    )


def _entries(summary: Summary, entries: list[dict[str, Any]]) -> None:
    by_type: Counter[str] = Counter()
    by_status: Counter[str] = Counter()
    by_change: Counter[str] = Counter()
    largest: list[tuple[int, str, dict[str, Any]]] = []
    for entry in entries:
        summary.entries += 1
        kind, status = str(entry.get("type")), str(entry.get("status"))
        by_type[kind] += 1
        by_status[status] += 1
        if entry.get("change"):
            by_change[str(entry["change"])] += 1
            if len(summary.changed) < LIST_LIMIT:
                summary.changed.append(_row(entry))
        if status in ("skipped", "partial") and len(summary.skipped) < LIST_LIMIT:
            summary.skipped.append(_row(entry))
        if kind == "file":
            size = int(entry.get("size") or 0)
            if status in ("ok", "partial"):
                summary.content_bytes += size
            item = (size, str(entry.get("path")), entry)
            if len(largest) < LARGEST:
                heapq.heappush(largest, item)
            elif item[:2] > largest[0][:2]:
                heapq.heapreplace(largest, item)
    summary.by_type, summary.by_status = dict(by_type), dict(by_status)
    summary.by_change = dict(by_change)
    summary.largest = [_row(e) for _, _, e in sorted(largest, key=lambda t: t[:2], reverse=True)]


# -- HTML ------------------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:72rem;
color:#1d2330;padding:0 1rem}h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;
margin-top:2rem;border-bottom:1px solid #d5d9e0;padding-bottom:.2rem}.sub{color:#5b6475}
table{border-collapse:collapse;width:100%;margin:.5rem 0}th,td{text-align:left;padding:.25rem .5rem;
border-bottom:1px solid #eceef2;vertical-align:top}th{background:#f4f6f9;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}code,.mono{font-family:ui-monospace,
SFMono-Regular,Menlo,monospace;font-size:12.5px;word-break:break-all}.added{color:#0a7d32}
.changed{color:#9a6700}.deleted{color:#b42318}.skipped,.partial{color:#b42318}.warn{background:#fff4e5;
border:1px solid #f5c27a;padding:.5rem .75rem;border-radius:4px}dl{display:grid;
grid-template-columns:max-content auto;gap:.2rem 1rem}dt{font-weight:600}dd{margin:0}
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _table(headers: list[str], rows: list[list[str]], empty: str = "None.") -> str:
    if not rows:
        return f"<p class=sub>{_e(empty)}</p>"
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _td(value: object, cls: str = "") -> str:
    attr = f' class="{_e(cls)}"' if cls else ""
    return f"<td{attr}>{_e(value)}</td>"


def _endpoint(sock: dict[str, Any], side: str) -> str:
    if sock.get("proto") == "unix":
        return str(sock.get("path") or "(unnamed)") if side == "local" else ""
    return f"{sock.get(side + '_address', '')}:{sock.get(side + '_port', '')}"


def _owners(sock: dict[str, Any]) -> str:
    return ", ".join(f"{p.get('pid')} {p.get('name', '')}" for p in sock.get("processes") or [])


def render_html(summary: Summary, timeline: Timeline | None = None) -> str:
    """One self-contained HTML page for an incident review."""
    t = summary.target
    title = f"distrodebug dump of {t.get('name') or t.get('container_id') or 'a target'}"
    ident = "".join(
        f"<dt>{_e(k)}</dt><dd class=mono>{_e(json.dumps(v) if not isinstance(v, str) else v)}</dd>"
        for k, v in t.items()
    )
    parts = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
        "<meta http-equiv=Content-Security-Policy content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        f"<meta name=viewport content='width=device-width'><title>{_e(title)}</title>",
        f"<style>{_CSS}{TIMELINE_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1><p class=sub>Bundle <code>{_e(summary.path)}</code>, created"
        f" {_e(summary.created)} by distrodebug {_e(summary.tool_version)}</p>",
        f"<p>Digest (sha256 of manifest.json): <code>{_e(summary.digest)}</code></p>",
    ]
    if summary.warnings:
        items = "".join(f"<li>{_e(w)}</li>" for w in summary.warnings)
        parts.append(f"<div class=warn><strong>Warnings</strong><ul>{items}</ul></div>")
    parts += [f"<h2>Target</h2><dl>{ident}</dl>", _overview(summary), _custody(summary.custody)]
    if timeline is not None:
        parts.append(timeline_section(timeline))
    parts.append(f"<h2>Changed files ({sum(summary.by_change.values())})</h2>")
    rows = [
        [_td(r.change, r.change or ""), _td(r.path, "mono"), _td(r.type), _td(_size(r.size), "num")]
        for r in summary.changed
    ]
    parts.append(_table(["change", "path", "type", "size"], rows, "No change list was recorded."))
    parts.append(f"<h2>Largest files (top {LARGEST})</h2>")
    rows = [
        [_td(_size(r.size), "num"), _td(r.path, "mono"), _td(r.status, r.status), _td(r.sha256)]
        for r in summary.largest
    ]
    parts.append(_table(["size", "path", "status", "sha256"], rows))
    parts.append(f"<h2>Processes ({len(summary.processes)})</h2>")
    rows = [
        [
            _td(p.get("pid"), "num"),
            _td(p.get("ppid"), "num"),
            _td(p.get("uid"), "num"),
            _td(" ".join(str(a) for a in p.get("cmdline") or []) or p.get("name"), "mono"),
            _td(p.get("cwd"), "mono"),
            _td(p.get("exe"), "mono"),
            _td(len(p.get("fds") or []), "num"),
        ]
        for p in summary.processes
    ]
    parts.append(_table(["pid", "ppid", "uid", "command", "cwd", "exe", "fds"], rows))
    parts.append(_sockets(summary))
    parts.append(f"<h2>Skipped or partial entries ({len(summary.skipped)})</h2>")
    rows = [
        [_td(r.status, r.status), _td(r.path, "mono"), _td(r.type), _td(r.reason)] for r in summary.skipped
    ]
    parts.append(_table(["status", "path", "type", "reason"], rows))
    parts.append(f"<h2>Mounts ({len(summary.mounts)})</h2>")
    rows = [
        [_td(m.get("mount_point"), "mono"), _td(m.get("fstype")), _td(m.get("source"), "mono")]
        + [_td(m.get("options"), "mono")]
        for m in summary.mounts
    ]
    parts.append(_table(["mount point", "type", "source", "options"], rows))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _overview(summary: Summary) -> str:
    def counts(values: dict[str, int]) -> str:
        return ", ".join(f"{_e(k)}: {v}" for k, v in sorted(values.items())) or "none"

    return (
        "<h2>Overview</h2><dl>"
        f"<dt>Entries</dt><dd>{summary.entries}</dd>"
        f"<dt>Stored content</dt><dd>{_e(_size(summary.content_bytes))}</dd>"
        f"<dt>By type</dt><dd>{counts(summary.by_type)}</dd>"
        f"<dt>By status</dt><dd>{counts(summary.by_status)}</dd>"
        f"<dt>Changes</dt><dd>{counts(summary.by_change)}</dd>"
        f"<dt>Redacted values</dt><dd>{summary.redactions}</dd>"
        f"<dt>Options</dt><dd class=mono>{_e(json.dumps(summary.options))}</dd></dl>"
    )


def _custody(record: dict[str, Any] | None) -> str:
    """Chain of custody: who collected, where, when, the clock, and the phases in order."""
    if not record:
        return "<h2>Chain of custody</h2><p class=sub>This bundle has no custody record.</p>"

    def part(key: str) -> dict[str, Any]:
        value = record.get(key)
        return value if isinstance(value, dict) else {}

    who, clock, signer = part("collector"), part("clock"), part("signer")
    command = record.get("command")
    argv = shlex.join(map(str, command)) if isinstance(command, list) else ""
    rows = [
        [_td(p.get("name")), _td(p.get("started"), "mono"), _td(p.get("ended"), "mono"),
         _td(p.get("status")), _td(p.get("what"))]
        for p in record.get("phases") or [] if isinstance(p, dict)
    ]
    return (
        "<h2>Chain of custody</h2><dl>"
        f"<dt>Collected by</dt><dd>{_e(who.get('user'))} (uid {_e(who.get('uid'))}) on"
        f" {_e(who.get('host'))}</dd>"
        f"<dt>Started, ended (UTC)</dt><dd class=mono>{_e(record.get('started'))} to"
        f" {_e(record.get('ended'))}</dd>"
        f"<dt>Clock</dt><dd>{_e(clock.get('source'))}; synchronised:"
        f" {_e(clock.get('synchronized'))}</dd>"
        f"<dt>Command</dt><dd class=mono>{_e(argv)}</dd>"
        f"<dt>Signer</dt><dd class=mono>{_e(signer.get('fingerprint') or 'not signed')}</dd></dl>"
        + _table(["phase", "started", "ended", "status", "what"], rows)
    )


def _sockets(summary: Summary) -> str:
    out = [f"<h2>Listening sockets ({len(summary.listening)})</h2>"]
    rows = [
        [_td(s.get("proto")), _td(_endpoint(s, "local"), "mono"), _td(_owners(s), "mono")]
        for s in summary.listening
    ]
    out.append(_table(["proto", "address", "processes"], rows))
    out.append(f"<h2>Connections ({len(summary.connections)})</h2>")
    rows = [
        [_td(s.get("proto")), _td(_endpoint(s, "local"), "mono")]
        + [_td(_endpoint(s, "remote"), "mono"), _td(s.get("state")), _td(_owners(s), "mono")]
        for s in summary.connections
    ]
    out.append(_table(["proto", "local", "remote", "state", "processes"], rows))
    return "\n".join(out)

