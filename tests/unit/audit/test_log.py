"""The audit log's chain: intact logs pass, every kind of tampering is named by line, appends from
many processes at once never fork the chain, and planted links never redirect a write."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest

from distrodebug.audit import log, state
from distrodebug.audit.recording import Recorder
from distrodebug.errors import DistrodebugError


def fill(count: int) -> list[dict[str, object]]:
    return [log.append({"id": f"e{i}", "event": "exec", "exit": i}) for i in range(count)]


def verify_cli() -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "distrodebug", "audit", "verify"],
                          capture_output=True, text=True, timeout=60, check=False)


def lines(state_dir: Path) -> list[bytes]:
    return (state_dir / "audit.log").read_bytes().splitlines(keepends=True)


def test_intact_log_passes(private_state: Path) -> None:
    fill(5)
    ran = verify_cli()
    assert ran.returncode == 0, ran.stderr
    assert "5 entries" in ran.stderr
    first = json.loads(lines(private_state)[0])
    assert first["prev"] == log.GENESIS and first["seq"] == 1


@pytest.mark.parametrize("tamper, line", [
    ("edit", 3), ("delete", 3), ("swap", 2), ("insert", 3), ("truncate", 5), ("whitespace", 4),
])
def test_tampering_is_named_by_line(private_state: Path, tamper: str, line: int) -> None:
    fill(5)
    rows = lines(private_state)
    if tamper == "edit":
        rows[2] = rows[2].replace(b'"exit":2', b'"exit":3')
    elif tamper == "delete":
        del rows[2]
    elif tamper == "swap":
        rows[1], rows[2] = rows[2], rows[1]
    elif tamper == "insert":
        rows.insert(2, rows[0])
    elif tamper == "truncate":
        del rows[-1]
    elif tamper == "whitespace":
        rows[3] = rows[3].replace(b'","', b'", "', 1)
    (private_state / "audit.log").write_bytes(b"".join(rows))
    ran = verify_cli()
    assert ran.returncode == 1
    assert f"line {line}: " in ran.stderr, ran.stderr
    assert "\n" not in ran.stderr.strip()  # one paragraph


def test_changed_recording_fails(private_state: Path) -> None:
    recorder = Recorder.create("r1", rows=24, cols=80, title="t", term="xterm")
    recorder.output(b"hello\r\n")
    log.append({"id": "r1", "event": "end", "recording": {"path": str(recorder.path),
                                                          "sha256": recorder.close()}})
    assert verify_cli().returncode == 0
    with open(recorder.path, "ab") as handle:
        handle.write(b'[9.0, "o", "forged"]\n')
    ran = verify_cli()
    assert ran.returncode == 1 and "line 1: " in ran.stderr and "recording" in ran.stderr


def _append_many(start: int) -> None:
    for i in range(25):
        log.append({"id": f"p{start}-{i}", "event": "exec"})


def test_concurrent_appends_keep_one_chain(private_state: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_append_many, args=(n,)) for n in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    verdict = log.verify()
    assert verdict.ok, verdict.problem
    assert verdict.entries == 100


def test_planted_links_do_not_redirect_writes(private_state: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    private_state.mkdir(mode=0o700)
    (private_state / "audit.log").symlink_to(victim)
    with pytest.raises(DistrodebugError):
        log.append({"id": "x"})
    assert victim.read_text() == "untouched"
    (private_state / "audit.log").unlink()
    (private_state / "recordings").symlink_to(tmp_path)
    with pytest.raises(DistrodebugError):
        Recorder.create("r2", rows=1, cols=1, title="", term="")
    assert not (tmp_path / "r2.cast").exists()


def test_state_directory_modes(private_state: Path) -> None:
    os.umask(0o022)
    fill(1)
    with state.directory("recordings"):
        pass
    assert (private_state.stat().st_mode & 0o777) == 0o700
    assert ((private_state / "recordings").stat().st_mode & 0o777) == 0o700
    assert ((private_state / "audit.log").stat().st_mode & 0o777) == 0o600
    assert ((private_state / "audit.head").stat().st_mode & 0o777) == 0o600


def test_hostile_values_are_escaped_when_shown(private_state: Path) -> None:
    hostile = "\x1b]0;pwned\x07\x1b[2J\nforged line"
    log.append({"id": "h1", "event": "exec", "command": "exec", "reason": hostile,
                "target": {"name": hostile}, "exit": 0})
    for args in (["list"], ["show", "h1"]):
        ran = subprocess.run([sys.executable, "-m", "distrodebug", "audit", *args],
                             capture_output=True, text=True, timeout=60, check=False)
        assert ran.returncode == 0, ran.stderr
        shown = ran.stdout + ran.stderr
        assert "\x1b" not in shown and "\x07" not in shown and "\nforged" not in shown
        assert "forged line" in shown
    missing = subprocess.run([sys.executable, "-m", "distrodebug", "audit", "show", "zz"],
                             capture_output=True, text=True, timeout=60, check=False)
    assert missing.returncode == 2


def test_unwritable_state_refuses_before_anything_starts(private_state: Path) -> None:
    private_state.parent.mkdir(parents=True, exist_ok=True)
    private_state.write_text("not a directory")
    ran = subprocess.run([sys.executable, "-m", "distrodebug", "exec", "ddtest-never-looked-up",
                          "--", "true"], capture_output=True, text=True, timeout=60, check=False,
                         env={**os.environ, "DOCKER_HOST": "unix:///nonexistent.sock"})
    assert ran.returncode == 125
    assert "state directory" in ran.stderr and "Traceback" not in ran.stderr
    assert "engine" not in ran.stderr.lower()  # refused before the engine was asked anything
