"""One time-ordered view of a bundle: files, processes, runtime events and log lines, in UTC.

Sources, all already in the bundle:

- the manifest's entries: each one's modification time (tar carries no change time, and the
  dump never runs ``stat`` per file, so ctime is not known);
- ``processes.json``: each process's start time (boot time + its stat's starttime);
- ``runtime-state.json``: the runtime's events and state times (created, started, exited,
  health checks, pod conditions, Kubernetes Events with their counts);
- ``logs.txt`` and ``logs.previous.txt``: every line starts with the runtime's timestamp;
- the manifest's ``created`` and the state's ``captured``: when the dump was taken.

A filesystem has tens of thousands of entries, nearly all of them from the image, so by default
only the entries modified while the target existed (or listed as changed against the image)
are shown one by one, the newest :attr:`TimelineOptions.files` of them; the rest are grouped,
one row per day (month, year when there are too many days), each saying how many entries and
naming a few. Log lines are capped at the newest :attr:`TimelineOptions.logs`. Every cut is
said in :attr:`Timeline.notes`. ``full`` lifts both caps. ``since``/``until`` filter first;
``limit`` keeps the newest rows last.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from distrodebug.clock import iso, parse_time

#: A group of entries names this many of them.
GROUP_EXAMPLES = 3
#: Above this many groups of one size, files are grouped by the next larger period.
MAX_GROUPS = 40
_PERIODS = (("day", 10), ("month", 7), ("year", 4))  # prefix length of an ISO date
_MAX_EPOCH = 253402300799  # 9999-12-31T23:59:59Z: past it, datetime cannot hold a time


@dataclass(frozen=True)
class TimelineOptions:
    """What the timeline shows; the defaults suit a terminal."""

    since: datetime | None = None
    until: datetime | None = None
    #: Keep only the newest rows, after everything else.
    limit: int | None = None
    #: Entries shown one by one at most (the newest); older ones are grouped.
    files: int = 200
    #: Log lines at most (the newest).
    logs: int = 500
    #: No grouping and no caps (``limit`` still applies).
    full: bool = False


@dataclass
class TimelineEvent:
    """One row: when, what kind, from where, and what happened."""

    #: UTC, always with microseconds: the strings sort as the times do.
    time: str
    #: file | files (a group) | process | event | log | dump
    kind: str
    source: str
    text: str
    #: info or warning (a Warning event, a failed exit, a health check that failed)
    level: str = "info"
    #: How many things a group row stands for (1 for others).
    count: int = 1
    path: str | None = None
    #: Seconds the time may be late by or off: 1 for whole-second sources (file times from
    #: tar, Kubernetes event times, the manifest's creation), a process's ``started_error``;
    #: 0 when the source gives a fraction. Within that much, the order against other rows is
    #: not known.
    precision: float = 0.0


@dataclass
class Timeline:
    """The rows in time order, what was grouped or cut (``notes``), and the counts before."""

    events: list[TimelineEvent] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: Rows of each kind before grouping and caps.
    totals: dict[str, int] = field(default_factory=dict)
    #: When the target came to be (the line between image content and its own changes).
    target_created: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _json(data: bytes | None) -> Any:
    if not data:
        return None
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None


_Row = tuple[datetime, "TimelineEvent"]


def _event(moment: datetime, kind: str, source: str, text: str, **extra: Any) -> _Row:
    return moment, TimelineEvent(iso(moment, fraction=True), kind, source, text, **extra)


def build_timeline(manifest: Mapping[str, Any], meta: Mapping[str, bytes],
                   options: TimelineOptions | None = None) -> Timeline:
    """The timeline of a bundle from its parsed manifest and its raw meta members."""
    options = options or TimelineOptions()
    state = _json(meta.get("runtime-state.json"))
    state = state if isinstance(state, dict) else {}
    inner = state["state"] if isinstance(state.get("state"), dict) else {}
    target = manifest["target"] if isinstance(manifest.get("target"), dict) else {}
    created = parse_time(inner.get("created")) or parse_time(target.get("created"))
    timeline = Timeline(target_created=iso(created) if created else None)
    notes = timeline.notes
    notes += [f"runtime: {n}" for n in state.get("notes") or [] if isinstance(n, str)]

    rows: list[_Row] = []
    rows += _runtime_events(state)
    processes, error = _processes(_json(meta.get("processes.json")))
    if processes and error >= 0.5:
        notes.append("processes: start times are the kernel's boot time, which it gives in whole "
                     "seconds, plus the start in 1/100 s: they may be up to a second early")
    rows += processes
    logs = _log_lines(meta.get("logs.txt"), "log") + _log_lines(meta.get("logs.previous.txt"),
                                                                "log (previous run)")
    finished = parse_time(manifest.get("created"))
    if finished:
        rows.append(_event(finished, "dump", "distrodebug", "dump finished (manifest written)",
                           precision=1.0))
    captured = parse_time(state.get("captured"))
    if captured:
        rows.append(_event(captured, "dump", "distrodebug", "runtime state, events and logs read"))
    files = _files(manifest.get("entries") or [])
    if not files and manifest.get("entries"):
        notes.append("no file entry carries a modification time")

    def wanted(moment: datetime) -> bool:
        return ((options.since is None or moment >= options.since)
                and (options.until is None or moment <= options.until))

    rows = [r for r in rows if wanted(r[0])]
    logs = [r for r in logs if wanted(r[0])]
    low = options.since.timestamp() if options.since else float("-inf")
    high = options.until.timestamp() if options.until else float("inf")
    files = [f for f in files if low <= f[0] <= high]
    counts = Counter(e.kind for _, e in rows)
    counts["log"] += len(logs)
    counts["file"] += len(files)
    timeline.totals = dict(counts)

    logs.sort(key=lambda r: r[0])
    if not options.full and len(logs) > options.logs:
        notes.append(f"log lines: the newest {options.logs} of {len(logs)} are shown "
                     "(--full shows them all)")
        logs = logs[-options.logs :]
    rows += logs
    rows += _file_rows(files, created, options, notes)
    # Stable: same-time rows keep their source order, except the dump's own rows, which come
    # last in their second (what it captured happened before it finished: a file written during
    # the dump has the whole-second time of the manifest's end).
    rows.sort(key=lambda r: (r[0], r[1].kind == "dump"))
    if any(event.precision >= 1 for _, event in rows):
        notes.append("times in whole seconds (file modification times, which tar keeps no finer; "
                     "Kubernetes event and status times; Podman's log times) sort at the start of "
                     "their second, before what happened earlier in that second")
    if options.limit is not None and len(rows) > options.limit:
        notes.append(f"--limit: the newest {options.limit} of {len(rows)} rows are shown")
        rows = rows[-options.limit :] if options.limit > 0 else []
    timeline.events = [event for _, event in rows]
    return timeline


def _runtime_events(state: Mapping[str, Any]) -> list[_Row]:
    out = []
    for event in state.get("events") or []:
        if not isinstance(event, dict):
            continue
        moment = parse_time(event.get("time"))
        if moment is None:
            continue
        whole = "." not in str(event.get("time"))
        reason, message = str(event.get("reason") or ""), str(event.get("message") or "").strip()
        text = message if message.startswith(reason) else f"{reason or '?'}: {message}".rstrip(": ")
        count = event.get("count")
        if isinstance(count, int) and count > 1:
            first = event.get("first")
            text += f" (x{count}, first {first})" if first else f" (x{count})"
        where = event.get("object")
        if where and where not in ("pod", "container"):
            text += f" [{where}]"
        level = "warning" if str(event.get("type")) == "Warning" else "info"
        out.append(_event(moment, "event", str(event.get("source") or "runtime"), text, level=level,
                          precision=1.0 if whole else 0.0))
    return out


def _processes(data: Any) -> tuple[list[_Row], float]:
    """Process start rows, and the largest error any of their times may have (seconds)."""
    if isinstance(data, dict):  # tolerate {"processes": [...]}
        data = next((v for v in data.values() if isinstance(v, list)), [])
    out = []
    error = 0.0
    for proc in data if isinstance(data, list) else []:
        if not isinstance(proc, dict):
            continue
        moment = parse_time(proc.get("started"))
        if moment is None:
            continue
        argv = proc.get("cmdline")
        command = " ".join(str(a) for a in argv) if isinstance(argv, list) and argv else proc.get("name")
        off = proc.get("started_error")
        off = float(off) if isinstance(off, int | float) else 1.0
        out.append(_event(moment, "process", "processes",
                          f"process {proc.get('pid')} started (uid {proc.get('uid')}): {command}",
                          precision=off))
        error = max(error, off)
    return out, error


def _log_lines(data: bytes | None, source: str) -> list[_Row]:
    """Lines that start with a timestamp; a line without one continues the one before."""
    out: list[_Row] = []
    if not data:
        return out
    for line in data.decode("utf-8", "replace").splitlines():
        stamp, _, rest = line.partition(" ")
        moment = parse_time(stamp)
        if moment is None:
            if out and line:
                out[-1][1].text += "\n" + line
            continue
        # Podman's API gives log times in whole seconds (its own files keep nanoseconds).
        whole = "." not in stamp
        out.append(_event(moment, "log", source, rest, precision=1.0 if whole else 0.0))
    return out


def _files(entries: Iterable[Any]) -> list[tuple[float, dict[str, Any]]]:
    """(mtime, entry) of every entry with a usable mtime, as plain numbers: a manifest has
    hundreds of thousands, and only the few rows shown need a datetime."""
    out = []
    for entry in entries:
        if isinstance(entry, dict):
            mtime = entry.get("mtime")
            if isinstance(mtime, int | float) and not isinstance(mtime, bool) and 0 < mtime < _MAX_EPOCH:
                out.append((float(mtime), entry))
    return out


def _describe(entry: Mapping[str, Any]) -> str:
    kind = entry.get("type") or "entry"
    extra = f", {entry['change']} against the image" if entry.get("change") else ""
    if entry.get("status") not in (None, "ok"):
        extra += f", {entry.get('status')}"
    return f"{kind} modified: /{entry.get('path')} ({entry.get('size') or 0} bytes{extra})"


def _file_rows(files: list[tuple[float, dict[str, Any]]], created: datetime | None,
               options: TimelineOptions, notes: list[str]) -> list[_Row]:
    """Entries one by one where they matter, the rest in groups (see the module doc)."""

    def row(mtime: float, entry: dict[str, Any]) -> _Row:
        level = "warning" if entry.get("change") in ("added", "changed") else "info"
        return _event(_moment(mtime), "file", "manifest", _describe(entry), level=level,
                      path=str(entry.get("path")), precision=1.0 if mtime == int(mtime) else 0.0)

    if options.full:
        return [row(m, e) for m, e in files]
    # A second of slack: the runtime's creation time and a file's whole-second mtime.
    border = created.timestamp() - 1 if created else None
    own: list[tuple[float, dict[str, Any]]] = []
    rest: list[tuple[float, dict[str, Any]]] = []
    for item in files:
        mine = item[1].get("change") or (border is not None and item[0] >= border)
        (own if mine else rest).append(item)
    own.sort(key=lambda f: f[0])
    if len(own) > options.files:
        notes.append(f"files: the newest {options.files} of {len(own)} entries modified since the "
                     "target was created are shown one by one, the rest grouped (--full shows "
                     "them all)")
        rest += own[: -options.files]
        own = own[-options.files :]
    out = [row(m, e) for m, e in own]
    if rest:
        groups, period = _groups(rest)
        before = "before the target was created" if border else "no creation time known"
        notes.append(f"files: {len(rest)} older entries are grouped by {period} ({before})")
        for key, members in sorted(groups.items()):
            members.sort(key=lambda f: f[0])
            names = ", ".join("/" + str(e.get("path")) for _, e in members[-GROUP_EXAMPLES:])
            more = ", ..." if len(members) > GROUP_EXAMPLES else ""
            many = "entries" if len(members) > 1 else "entry"
            text = f"{len(members)} {many} last modified in {key}, the newest: {names}{more}"
            out.append(_event(_moment(members[-1][0]), "files", "manifest", text,
                              count=len(members), precision=1.0))
    return out


def _moment(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _groups(files: list[tuple[float, dict[str, Any]]]
            ) -> tuple[dict[str, list[tuple[float, dict[str, Any]]]], str]:
    """Entries by day, or month or year when the days are too many (keys: ISO prefixes)."""
    by_day: dict[int, list[tuple[float, dict[str, Any]]]] = {}
    for item in files:
        by_day.setdefault(int(item[0] // 86400), []).append(item)
    names = {day: _moment(day * 86400.0).date().isoformat() for day in by_day}
    groups: dict[str, list[tuple[float, dict[str, Any]]]] = {}
    for period, width in _PERIODS:
        groups = {}
        for day, items in by_day.items():
            groups.setdefault(names[day][:width], []).extend(items)
        if len(groups) <= MAX_GROUPS:
            return groups, period
    return groups, "year"


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_bound(text: str, reference: datetime | None, option: str) -> datetime:
    """``--since``/``--until``: an ISO 8601 time (UTC unless it says otherwise; a date alone
    is its midnight) or a duration such as ``90s``, ``15m``, ``2h``, ``3d`` before the dump."""
    from distrodebug.errors import UsageError

    value = text.strip()
    if value[:-1].isdigit() and value[-1:] in _UNITS:
        if reference is None:
            raise UsageError(f"{option} {text}: the bundle does not say when it was made.",
                             "Give a time instead, such as 2026-11-30T07:00:00Z.")
        return reference - timedelta(seconds=int(value[:-1]) * _UNITS[value[-1]])
    moment: datetime | None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        moment = parse_time(value)  # nanoseconds, as the logs write them
    if moment is None:
        raise UsageError(f"{option} {text!r} is neither a time nor a duration.",
                         "Use 2026-11-30T07:00:00Z, 2026-11-30, or 15m, 2h, 3d (before the dump).")
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
