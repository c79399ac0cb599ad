"""The dump's volatile runtime state and the timeline of a bundle, on the real engine."""

from __future__ import annotations

import json
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("no_leftovers")]

# Prints, waits, writes a file in its writable /tmp, prints again (and a secret to stderr).
LATE_WRITER = """
import sys, time
print('booting', flush=True)
time.sleep(2)
open('/tmp/late.txt', 'w').write('written after the start')
print('wrote /tmp/late.txt', flush=True)
print('oops token=abc123secret', file=sys.stderr, flush=True)
print('\\x1b]0;owned\\x07\\x1b[2Jforged <b>markup</b>', flush=True)
time.sleep(3600)
"""


def happened_in_order(rows: list[dict[str, Any]], indexes: list[int]) -> bool:
    """Each row no later than the next, as far as the times can tell: a row's time is the start
    of an interval as long as its precision (whole seconds for tar's file times, Kubernetes'
    events and Podman's log lines), so a coarse row may sort before what it follows."""
    def end(row: dict[str, Any]) -> str:
        precision = row.get("precision") or 0
        return row["time"] if precision < 1 else row["time"][:19] + ".999999Z"

    return all(rows[a]["time"] <= end(rows[b]) for a, b in zip(indexes, indexes[1:], strict=False))


def _meta(bundle: Path) -> dict[str, bytes]:
    with tarfile.open(bundle) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar  # type: ignore[union-attr]
                if m.name.startswith("meta/") and m.isfile()}


def _late_writer(make_container: Any, python_image: str) -> Any:
    target = make_container(python_image, command=["-c", LATE_WRITER], user="65532")
    deadline = time.monotonic() + 30
    while b"wrote" not in target.logs() and time.monotonic() < deadline:
        time.sleep(0.2)
    return target


def test_dump_holds_state_events_and_timestamped_logs(dd: Any, make_container: Any,
                                                      python_image: str, tmp_path: Path) -> None:
    target = _late_writer(make_container, python_image)
    bundle = tmp_path / "late.tar"
    ran = dd("dump", target.name, "-f", str(bundle), "--path", "/tmp")
    assert ran.code == 0, ran.err
    meta = _meta(bundle)
    state = json.loads(meta["meta/runtime-state.json"])
    assert state["state"]["status"] == "running" and state["state"]["restart_count"] == 0
    assert state["state"]["started_at"].endswith("Z")
    # (Podman reports an 'init' between the two.)
    assert [e["reason"] for e in state["events"] if e["reason"] != "init"][:2] == ["create", "start"]
    logs = meta["meta/logs.txt"].decode()
    assert "booting" in logs and "wrote /tmp/late.txt" in logs
    assert "abc123secret" not in logs and "token=***REDACTED***" in logs
    assert all(line.split(" ", 1)[0].endswith("Z") for line in logs.splitlines())
    assert "meta/logs.previous.txt" not in meta


def test_timeline_orders_a_late_file_after_its_process_and_holds_the_logs(
        dd: Any, make_container: Any, python_image: str, tmp_path: Path) -> None:
    target = _late_writer(make_container, python_image)
    bundle = tmp_path / "late.tar.zst"
    assert dd("dump", target.name, "-f", str(bundle)).code == 0
    ran = dd("report", str(bundle), "--timeline", "-o", "json")
    assert ran.code == 0, ran.err
    timeline = json.loads(ran.out)
    assert timeline["kind"] == "timeline"
    rows = timeline["events"]
    assert [r["time"] for r in rows] == sorted(r["time"] for r in rows)

    def first(test: Any) -> int:
        return next(i for i, r in enumerate(rows) if test(r))

    started = first(lambda r: r["kind"] == "process" and "python3.11" in r["text"])
    written = first(lambda r: r["kind"] == "file" and r["path"] == "tmp/late.txt")
    booting = first(lambda r: r["kind"] == "log" and r["text"] == "booting")
    wrote = first(lambda r: r["kind"] == "log" and r["text"] == "wrote /tmp/late.txt")
    created = first(lambda r: r["kind"] == "event" and r["text"].startswith("create"))
    assert happened_in_order(rows, [created, started, booting, written]), rows
    assert written <= wrote + 1 or happened_in_order(rows, [written, wrote]), rows
    assert rows[written]["level"] == "warning" and "added against the image" in rows[written]["text"]
    assert rows[-1]["kind"] == "dump"
    # The image's own files are grouped, not listed one by one.
    groups = [r for r in rows if r["kind"] == "files"]
    assert groups and sum(r["count"] for r in groups) > 1000 and len(rows) < 300
    assert timeline["totals"]["file"] > 1000

    text = dd("report", str(bundle), "--timeline", "--since", rows[written]["time"])
    assert text.code == 0 and "/tmp/late.txt" in text.out and "booting" not in text.out
    # The target's terminal escapes are shown escaped, never sent to the terminal.
    assert "\\x1b]0;owned\\x07\\x1b[2Jforged" in text.out and "\x1b" not in text.out
    assert "grouped" in text.err or "note:" in text.err


def test_html_timeline_of_a_real_dump_renders_in_chromium(
        dd: Any, make_container: Any, python_image: str, tmp_path: Path) -> None:
    from tests.unit.bundle.test_report_browser import _Elements, chromium, run_chromium

    binary = chromium()
    target = _late_writer(make_container, python_image)
    bundle = tmp_path / "late.tar"
    assert dd("dump", target.name, "-f", str(bundle), "--path", "/tmp").code == 0
    page = tmp_path / "report.html"
    ran = dd("report", str(bundle), "--html", str(page))
    assert ran.code == 0, ran.err
    assert page.stat().st_mode & 0o777 == 0o600
    dom = run_chromium(binary, tmp_path / "profile", "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    section = dom.stdout[dom.stdout.index("Timeline ("):]
    for seen in ("wrote /tmp/late.txt", "file modified: /tmp/late.txt", "process 1 started",
                 ">create</td>", ">start</td>", "token=***REDACTED***"):
        assert seen in section, seen
    assert "abc123secret" not in dom.stdout
    elements = _Elements()
    elements.feed(dom.stdout)
    assert {"svg", "circle"} <= elements.tags and "script" not in elements.tags
    assert "b" not in elements.tags and "forged &lt;b&gt;markup&lt;/b&gt;" in section
    shot = tmp_path / "report.png"
    done = run_chromium(binary, tmp_path / "profile2", f"--screenshot={shot}",
                        "--window-size=1200,2400", page.as_uri())
    assert done.returncode == 0 and shot.stat().st_size > 10_000, done.stderr[-2000:]


def test_timeline_of_an_exited_container_says_how_it_ended(
        dd: Any, make_container: Any, python_image: str, tmp_path: Path) -> None:
    target = make_container(python_image, command=[
        "-c", "import sys; print('about to fail', flush=True); sys.exit(3)"])
    assert target.wait(timeout=30)["StatusCode"] == 3
    bundle = tmp_path / "exited.tar"
    ran = dd("dump", target.name, "-f", str(bundle), "--path", "/etc/passwd")
    assert ran.code == 0, ran.err
    rows = json.loads(dd("report", str(bundle), "--timeline", "-o", "json").out)["events"]
    died = [r for r in rows if r["kind"] == "event" and r["text"].startswith("die")]
    assert died and "exitCode=3" in died[0]["text"], rows
    logged = next(i for i, r in enumerate(rows) if r["text"] == "about to fail")
    assert logged < rows.index(died[0])
    state = json.loads(_meta(bundle)["meta/runtime-state.json"])
    assert state["state"]["status"] == "exited" and state["state"]["exit_code"] == 3
    assert state["state"]["finished_at"].endswith("Z")


ONCE = """
import os, sys, time
if os.path.exists('/tmp/ran'):
    print('second run up', flush=True)
    time.sleep(3600)
open('/tmp/ran', 'w').write('1')
print('first run failing', flush=True)
sys.exit(3)
"""


def test_timeline_of_a_restarted_container_shows_both_runs(
        dd: Any, make_container: Any, python_image: str, tmp_path: Path) -> None:
    from distrodebug.runtimes.docker.spec import CRASH_LOOP_UPTIME

    target = make_container(python_image, command=["-c", ONCE],
                            restart_policy={"Name": "on-failure", "MaximumRetryCount": 1})
    deadline = time.monotonic() + 30
    while b"second run up" not in target.logs() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(CRASH_LOOP_UPTIME + 1)  # a restarted container counts as crash-looping until then
    bundle = tmp_path / "restarted.tar"
    ran = dd("dump", target.name, "-f", str(bundle), "--path", "/tmp")
    assert ran.code == 0, ran.err
    state = json.loads(_meta(bundle)["meta/runtime-state.json"])
    assert state["state"]["restart_count"] == 1
    rows = json.loads(dd("report", str(bundle), "--timeline", "-o", "json").out)["events"]
    texts = [r["text"] for r in rows]
    # (The engine reports "start" once the process runs: its first line may come before.)
    order = [next(i for i, t in enumerate(texts) if t.startswith(prefix)) for prefix in (
        "create", "first run failing", "die (exitCode=3)", "second run up")]
    assert happened_in_order(rows, order), texts
    assert sum(t == "start" for t in texts) == 2
    marker = next(r for r in rows if r["kind"] == "file" and r["path"] == "tmp/ran")
    died = rows[order[2]]
    # Written by the first run before it died; tar keeps whole seconds, and the row says so.
    assert marker["precision"] == 1 and marker["time"] <= died["time"]
