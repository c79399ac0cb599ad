"""Recordings: asciicast v2 events, secrets redacted across the pieces a terminal sends them in,
replay byte for byte."""

from __future__ import annotations

import json
import os
from pathlib import Path

from distrodebug.audit.recording import Recorder, replay
from distrodebug.audit.witness import redact_args


def record(pieces: list[tuple[str, bytes]]) -> list[list[object]]:
    ticks = iter(range(1000))
    recorder = Recorder.create("t", rows=24, cols=80, title="t", term="xterm",
                               clock=lambda: float(next(ticks)))
    for kind, data in pieces:
        if kind == "r":
            recorder.resize(40, 120)
        else:
            getattr(recorder, {"o": "output", "i": "input"}[kind])(data)
    recorder.close()
    rows = recorder.path.read_text().splitlines()
    assert json.loads(rows[0])["version"] == 2
    return [json.loads(row) for row in rows[1:]]


def test_secret_typed_one_key_at_a_time_is_redacted(private_state: Path) -> None:
    keys = [("i", bytes([c])) for c in b"export API_TOKEN=hunter2\r"]
    echo = [("o", bytes([c])) for c in b"export API_TOKEN=hunter2\r\n"]
    found = record([p for pair in zip(keys, echo, strict=False) for p in pair]
                   + [("o", b"\n"), ("o", b"# ")])
    text = json.dumps(found)
    assert "hunter2" not in text
    assert "".join(str(e[2]) for e in found if e[1] == "i") == "export API_TOKEN=***REDACTED***\r"
    assert "".join(str(e[2]) for e in found if e[1] == "o").endswith(
        "API_TOKEN=***REDACTED***\r\n# ")


def test_plain_output_is_written_at_once_and_utf8_split_survives(private_state: Path) -> None:
    snow = "☃".encode()
    found = record([("o", b"ls\r\n"), ("o", snow[:1]), ("o", snow[1:] + b" x"), ("r", b"")])
    assert found == [[1.0, "o", "ls\r\n"], [2.0, "o", "☃ x"], [3.0, "r", "120x40"]]


def test_replay_writes_output_events_only(private_state: Path, tmp_path: Path) -> None:
    recorder = Recorder.create("p", rows=24, cols=80, title="t", term="xterm")
    recorder.output(b"one\r\n")
    recorder.input(b"typed\r")
    recorder.output("dé\r\n".encode())
    recorder.close()
    out = tmp_path / "out"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        replay(recorder.path, fd, wait=False)
    finally:
        os.close(fd)
    assert out.read_bytes() == "one\r\ndé\r\n".encode()


def test_command_lines_lose_their_secrets() -> None:
    args = redact_args(["exec", "web", "--env=API_TOKEN=a1", "--env", "TOKEN=a2", "--", "mysql",
                        "--password=a3", "--password", "a4", "-pa5", "sh", "-c", "PASS=a6 run"])
    assert not any(f"a{i}" in " ".join(args) for i in range(1, 7)), args
    assert args[:2] == ["exec", "web"]


def test_line_typed_after_a_password_prompt_is_redacted(private_state: Path) -> None:
    found = record([("o", b"Enter password: ")] + [("i", bytes([c])) for c in b"hunter2"]
                   + [("i", b"\rls\r"), ("o", b"\r\nfile\r\n# ")])
    assert "hunter2" not in json.dumps(found)
    assert [e[2] for e in found if e[1] == "i"] == ["***REDACTED***\r", "ls\r"]
