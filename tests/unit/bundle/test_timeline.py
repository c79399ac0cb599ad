"""The timeline: sources merged in time order, files grouped and capped, filters, rendering."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from distrodebug.bundle.options import DumpOptions
from distrodebug.bundle.report import load_bundle
from distrodebug.bundle.timeline import TimelineOptions, build_timeline, parse_bound
from distrodebug.bundle.writer import DumpInfo, write_bundle
from distrodebug.errors import UsageError
from tests.unit.bundle.test_format import tar_bytes

EVIL = "\x1b]0;owned\x07<script>x</script>\nfake 2020-01-01T00:00:00Z row"
T0 = datetime(2026, 11, 30, 7, 0, 0, tzinfo=UTC).timestamp()  # the target's creation


def _entry(path: str, mtime: float, **extra: Any) -> dict[str, Any]:
    return {"path": path, "type": "file", "size": 3, "mtime": int(mtime), "status": "ok", **extra}


def _state(**extra: Any) -> bytes:
    record = {
        "captured": "2026-11-30T07:10:00Z",
        "state": {"created": "2026-11-30T07:00:00Z"},
        "events": [
            {"time": "2026-11-30T07:00:01.5Z", "type": "Normal", "reason": "Started",
             "message": "container started", "source": "kubelet", "count": 1},
            {"time": "2026-11-30T07:04:00Z", "first": "2026-11-30T07:02:00Z", "count": 5,
             "type": "Warning", "reason": "BackOff", "message": "Back-off restarting",
             "source": "kubelet", "object": "spec.containers{app}"},
        ],
        "notes": ["logs: cut"], **extra,
    }
    return json.dumps(record).encode()


def _meta() -> dict[str, bytes]:
    processes = [{"pid": 1, "uid": 0, "cmdline": ["app", "--serve"], "started": "2026-11-30T07:00:01.000Z"},
                 {"pid": 9, "uid": 65532, "cmdline": [EVIL], "started": "2026-11-30T07:03:00.000Z"},
                 {"pid": 10, "name": "gone", "started": None}]
    logs = (b"2026-11-30T07:00:02.123456789Z listening on 8080\n"
            b"2026-11-30T07:03:30.000000001Z panic: boom\ncontinued traceback line\n"
            b"not a time at all first\n")
    return {"runtime-state.json": _state(), "processes.json": json.dumps(processes).encode(),
            "logs.txt": logs, "logs.previous.txt": b"2026-11-30T06:59:59Z previous run ended\n"}


def _manifest(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"created": "2026-11-30T07:10:05Z", "target": {"name": "web", "created": "2026-11-30T07:00:00Z"},
            "entries": entries}


def test_sources_merge_in_time_order() -> None:
    entries = [_entry("app/late.txt", T0 + 150), _entry("usr/lib/libc.so", T0 - 86400 * 30),
               {"path": "etc/shadow", "type": None, "status": "deleted"}]
    timeline = build_timeline(_manifest(entries), _meta())
    times = [e.time for e in timeline.events]
    assert times == sorted(times)
    texts = [(e.kind, e.text) for e in timeline.events]
    order = [next(i for i, (_, t) in enumerate(texts) if needle in t) for needle in (
        "previous run ended", "process 1 started", "Started: container started",
        "listening on 8080", "/app/late.txt", "process 9 started", "panic: boom", "BackOff",
        "runtime state, events and logs read", "dump finished")]
    assert order == sorted(order)
    panic = next(e for e in timeline.events if "panic" in e.text)
    assert panic.text == "panic: boom\ncontinued traceback line\nnot a time at all first"
    assert panic.time == "2026-11-30T07:03:30.000000Z" and panic.source == "log"
    backoff = next(e for e in timeline.events if "BackOff" in e.text)
    assert backoff.level == "warning" and "(x5, first 2026-11-30T07:02:00Z)" in backoff.text
    assert "[spec.containers{app}]" in backoff.text
    old = next(e for e in timeline.events if e.kind == "files")
    assert old.count == 1 and "/usr/lib/libc.so" in old.text and "1 entry last" in old.text
    assert timeline.totals["file"] == 2 and timeline.totals["log"] == 3
    assert timeline.target_created == "2026-11-30T07:00:00Z"
    assert len({len(t) for t in times}) == 1
    assert "runtime: logs: cut" in timeline.notes
    # Log lines carry the precision of their stamp: Podman's API gives whole seconds.
    assert panic.precision == 0.0
    previous = next(e for e in timeline.events if "previous run ended" in e.text)
    assert previous.precision == 1.0 and "Podman's log times" in " ".join(timeline.notes)


def test_a_file_written_in_the_dumps_last_second_comes_before_its_end() -> None:
    """Tar's whole seconds tie a file written during the dump with the manifest's end: the dump
    finished after what it captured (on Podman the target's /etc/hosts is such a file)."""
    timeline = build_timeline(_manifest([_entry("etc/hosts", T0 + 605)]), _meta())
    assert timeline.events[-1].kind == "dump" and "dump finished" in timeline.events[-1].text
    assert timeline.events[-2].kind == "file" and timeline.events[-2].time == timeline.events[-1].time


def test_many_files_are_grouped_and_the_newest_kept() -> None:
    image = [_entry(f"usr/share/f{i}", T0 - 86400 * (i % 3 + 1) - i) for i in range(20_000)]
    own = [_entry(f"tmp/new{i}", T0 + i) for i in range(300)]
    changed = [_entry("etc/passwd", T0 - 86400 * 400, change="changed")]
    timeline = build_timeline(_manifest(image + own + changed), {}, TimelineOptions(files=50))
    files = [e for e in timeline.events if e.kind == "file"]
    groups = [e for e in timeline.events if e.kind == "files"]
    assert len(files) == 50 and files[-1].path == "tmp/new299" and files[0].path == "tmp/new250"
    assert sum(g.count for g in groups) == 20_000 + 250 + 1  # nothing is lost, only grouped
    assert len(groups) <= 10 and len(timeline.events) < 70
    assert any("newest 50 of 301" in n for n in timeline.notes)
    everything = build_timeline(_manifest(image + own), {}, TimelineOptions(full=True))
    assert len(everything.events) == 20_300 + 1  # and the dump itself


def test_groups_widen_when_days_are_many() -> None:
    entries = [_entry(f"f{i}", T0 - 86400 * (i + 1)) for i in range(200)]
    timeline = build_timeline(_manifest(entries), {})
    assert any("grouped by month" in n for n in timeline.notes)
    assert all(len(e.text.split(" in ", 1)[1].split(",")[0]) == 7 for e in timeline.events
               if e.kind == "files")


def test_filters_and_limit() -> None:
    since = datetime(2026, 11, 30, 7, 1, tzinfo=UTC)
    until = datetime(2026, 11, 30, 7, 5, tzinfo=UTC)
    timeline = build_timeline(_manifest([_entry("a", T0 + 150)]), _meta(),
                              TimelineOptions(since=since, until=until))
    assert timeline.events and all("2026-11-30T07:01" <= e.time <= "2026-11-30T07:05"
                                   for e in timeline.events)
    limited = build_timeline(_manifest([]), _meta(), TimelineOptions(limit=2))
    assert [e.text for e in limited.events] == ["runtime state, events and logs read",
                                                "dump finished (manifest written)"]
    capped = build_timeline(_manifest([]), _meta(), TimelineOptions(logs=1))
    assert [e.text for e in capped.events if e.kind == "log"][0].startswith("panic")


def test_parse_bound() -> None:
    ref = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    assert parse_bound("2h", ref, "--since") == datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
    assert parse_bound("2026-11-30", ref, "--since") == datetime(2026, 11, 30, tzinfo=UTC)
    assert parse_bound("2026-11-30T09:00:00+01:00", ref, "--until") == ref
    assert parse_bound("2026-11-30T07:00:00.123456789Z", ref, "--until").microsecond == 123456
    with pytest.raises(UsageError):
        parse_bound("yesterday", ref, "--since")
    with pytest.raises(UsageError):
        parse_bound("5m", None, "--since")


def test_damaged_meta_gives_what_it_can() -> None:
    meta = {"runtime-state.json": b"{not json", "processes.json": b"[1, {\"pid\": 2}]",
            "logs.txt": b"\xff\xfe garbage\n"}
    timeline = build_timeline(_manifest([{"path": "x", "mtime": "soon"}, "junk"]), meta)
    assert [e.kind for e in timeline.events] == ["dump"]


def test_timeline_of_a_written_bundle_renders_hostile_text_escaped(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from distrodebug.cli import render

    out = tmp_path / "b.tar"
    info = DumpInfo(target={"name": "web", "created": "2026-11-30T07:00:00Z"},
                    meta={"processes.json": json.loads(_meta()["processes.json"]),
                          "logs.txt": f"2026-11-30T07:06:00Z {EVIL} password=hunter2\n"})
    write_bundle(out, io.BytesIO(tar_bytes([(f"tmp/{EVIL}", "file", b"x")])), info, DumpOptions())
    loaded = load_bundle(out)
    timeline = build_timeline(loaded.manifest, loaded.meta)
    evil_log = next(e for e in timeline.events if e.kind == "log")
    assert "hunter2" not in evil_log.text  # redacted when the bundle was written
    render.timeline(timeline)
    printed = capsys.readouterr().out
    assert "\x1b" not in printed and "\x07" not in printed
    assert printed.count("\n") == len(timeline.events)  # a name's newline cannot forge a row
    assert "\\x1b]0;owned\\x07" in printed
    file_line = next(line for line in printed.splitlines() if " files " in line)
    assert file_line.startswith("2023-11-14T22:13:20Z ")  # whole seconds: no made-up fraction
    assert any("whole seconds" in n for n in timeline.notes)


def test_html_section_escapes_and_draws_the_lanes(tmp_path: Path) -> None:
    from distrodebug.bundle.report import render_html, summarize_bundle

    out = tmp_path / "b.tar"
    info = DumpInfo(target={"name": "web", "created": "2026-11-30T07:00:00Z"},
                    meta={"processes.json": json.loads(_meta()["processes.json"]),
                          "runtime-state.json": json.loads(_state()),
                          "logs.txt": f"2026-11-30T07:06:00Z {EVIL}\n"})
    write_bundle(out, io.BytesIO(tar_bytes([(f"tmp/{EVIL}", "file", b"x")])), info, DumpOptions())
    loaded = load_bundle(out)
    page = render_html(summarize_bundle(out, loaded), build_timeline(loaded.manifest, loaded.meta))
    section = page[page.index("<h2>Timeline"):]
    assert "<svg" in section and section.count("<circle") >= 5
    assert "<script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in section
    assert "\x1b" in section  # shown as text, escaped for HTML (a browser draws no control)
    assert "k-process" in section and "lv-warning" in section  # BackOff is a warning


def test_axis_positions_cut_long_gaps() -> None:
    from distrodebug.bundle.timeline_html import axis_positions

    xs, breaks = axis_positions([0.0, 1.0, 2.0, 3.0, 3600.0])
    assert xs[0] == 0.0 and xs[-1] == 1.0 and xs == sorted(xs)
    assert xs[3] > 0.5  # the burst keeps most of the width
    assert len(breaks) == 1 and breaks[0][1] == 3597.0
    even, none = axis_positions([0.0, 10.0, 20.0])
    assert even == [0.0, 0.5, 1.0] and none == []
    assert axis_positions([5.0]) == ([0.0], []) and axis_positions([]) == ([], [])
