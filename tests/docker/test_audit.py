"""Sessions leave a record: a recorded shell in a real pty, its replay, and the audit log of
exec, cp and dump, against the real engine."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pexpect
import pytest

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("no_leftovers")]
PROMPT = r"\[distrodebug [^\]]+\] \S+ [#$] "


def entries(state: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (state / "audit.log").read_text().splitlines()]


def events(path: Path) -> tuple[dict[str, Any], list[list[Any]]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return json.loads(lines[0]), [json.loads(line) for line in lines[1:]]


def spawn(toolbox: str, *args: str) -> pexpect.spawn:
    env = {**os.environ, "DISTRODEBUG_IMAGE": toolbox, "TERM": "xterm"}
    return pexpect.spawn(sys.executable, ["-m", "distrodebug", "shell", *args], env=env,
                         encoding="utf-8", timeout=30, dimensions=(30, 100))


def test_recorded_shell_replays_byte_exact(toolbox: str, make_container: Any, python_image: str,
                                           private_state: Path, dd: Any) -> None:
    target = make_container(python_image, user="65532", read_only=True)
    child = spawn(toolbox, target.name, "--reason", "INC-42 slow responses")
    child.expect(PROMPT)
    child.sendline("echo answer-$((6 * 7)); export API_TOKEN=hunter2")
    child.expect("answer-42")
    child.expect(PROMPT)
    child.sendline("printf 'Password: '; stty -echo; read -r pw; stty echo; echo got-${#pw}")
    child.expect("Password: ")
    child.sendline("s3cretpw")
    child.expect("got-8")
    child.expect(PROMPT)
    child.setwinsize(41, 123)
    time.sleep(0.5)
    child.sendline("stty size")
    child.expect("41 123")
    child.expect(PROMPT)
    child.sendline("exit 5")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 5

    start, end = entries(private_state)
    assert (start["event"], end["event"]) == ("start", "end")
    assert start["id"] == end["id"] and end["exit"] == 5 and "exit" not in start
    assert end["reason"] == "INC-42 slow responses"
    assert end["target"]["container_id"] == target.id and end["target"]["image_id"]
    assert "SYS_PTRACE" in end["privileges"]
    cast = Path(end["recording"]["path"])
    assert cast.parent.parent == private_state
    assert stat.S_IMODE(cast.stat().st_mode) == 0o600
    assert stat.S_IMODE(cast.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((private_state / "audit.log").stat().st_mode) == 0o600

    header, recorded = events(cast)
    assert header["version"] == 2 and (header["width"], header["height"]) == (100, 30)
    assert header["env"]["TERM"] == "xterm" and isinstance(header["timestamp"], int)
    kinds = {kind for _, kind, _ in recorded}
    assert {"o", "i", "r"} <= kinds
    assert ["r", "123x41"] in [[kind, data] for _, kind, data in recorded]
    stamps = [seconds for seconds, _, _ in recorded]
    assert stamps == sorted(stamps)
    typed = "".join(data for _, kind, data in recorded if kind == "i")
    assert "echo answer-$((6 * 7))" in typed
    output = "".join(data for _, kind, data in recorded if kind == "o")
    assert "answer-42" in output
    assert "hunter2" not in cast.read_text()  # typed and echoed, redacted in both
    assert "s3cretpw" not in cast.read_text()  # typed at a prompt that did not echo it
    assert "hunter2" not in (private_state / "audit.log").read_text()

    shown = subprocess.run([sys.executable, "-m", "distrodebug", "audit", "show", end["id"][:20],
                            "--no-wait"], capture_output=True, timeout=60, check=False)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == output.encode()  # byte for byte what the output events hold
    assert b"INC-42 slow responses" in shown.stderr
    assert dd("audit", "verify").code == 0


def test_no_record_and_required_reason(toolbox: str, make_container: Any, static_image: str,
                                       private_state: Path, dd: Any, engine: Any) -> None:
    target = make_container(static_image)
    child = spawn(toolbox, target.name, "--no-record")
    child.expect(PROMPT)
    child.sendline("exit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    (entry,) = [e for e in entries(private_state) if e["event"] == "end"]
    assert entry["recording"] is None
    assert not (private_state / "recordings").exists() or \
        not list((private_state / "recordings").iterdir())

    time.sleep(1.1)  # the engine's events are filtered by whole seconds: skip the shell's own
    since = int(time.time())
    refused = dd("exec", target.name, "--", "true", env={"DISTRODEBUG_REQUIRE_REASON": "1"})
    assert refused.code == 2, refused.err
    assert "--reason" in refused.err
    created = engine.events(since=since, until=int(time.time()) + 1, decode=True,
                            filters={"type": "container", "event": "create",
                                     "label": f"io.distrodebug.target={target.name}"})
    assert [e["id"] for e in created] == []  # no sidecar was even created
    assert len(entries(private_state)) == 2  # nothing was started, nothing logged
    allowed = dd("exec", target.name, "--reason", "checking", "--", "true",
                 env={"DISTRODEBUG_REQUIRE_REASON": "1"})
    assert allowed.code == 0, allowed.err


def test_exec_cp_dump_entries_hold_no_secret(toolbox: str, make_container: Any,
                                             python_image: str, private_state: Path, dd: Any,
                                             tmp_path: Path) -> None:
    target = make_container(python_image)
    ran = dd("exec", target.name, "--reason", "r1", "--", "sh", "-c",
             "env TOKEN=s3cr3t-one true; exit 4", "--password=hunter2")
    assert ran.code == 4, ran.err
    ran = dd("exec", target.name, "--", "mysql", "--password", "hunter3", "-phunter4")
    assert ran.code == 127  # no mysql in the toolbox: the status is the command's own
    copied = dd("cp", f"{target.name}:/app/app.py", str(tmp_path / "app.py"), "--reason", "r2")
    assert copied.code == 0, copied.err
    dumped = dd("dump", target.name, "-f", str(tmp_path / "b.tar.gz"), "--reason", "r3")
    assert dumped.code == 0, dumped.err
    missing = dd("cp", "ddtest-no-such-container:/x", str(tmp_path / "x"))
    assert missing.code != 0

    log = (private_state / "audit.log").read_text()
    for secret in ("s3cr3t-one", "hunter2", "hunter3", "hunter4"):
        assert secret not in log
    found = entries(private_state)
    assert [(e["event"], e["exit"]) for e in found] == [
        ("exec", 4), ("exec", 127), ("cp", 0), ("dump", 0), ("cp", missing.code)]
    assert [e["reason"] for e in found[2:4]] == ["r2", "r3"]
    assert all(e["target"]["container_id"] == target.id for e in found[:4])
    assert found[0]["user"] and isinstance(found[0]["uid"], int) and found[0]["host"]
    assert found[0]["time"].endswith("Z")
    listed = dd("audit", "list", "-o", "json")
    assert [e["id"] for e in json.loads(listed.out)["items"]] == [e["id"] for e in found]
    assert dd("audit", "verify").code == 0


def test_hangup_still_ends_the_entry_and_the_recording(toolbox: str, make_container: Any,
                                                        static_image: str, private_state: Path,
                                                        dd: Any) -> None:
    target = make_container(static_image)
    child = spawn(toolbox, target.name)
    child.expect(PROMPT)
    child.sendline("echo before-hangup")
    child.expect("before-hangup")
    child.expect(PROMPT)
    child.kill(1)  # SIGHUP: the terminal closed
    child.expect(pexpect.EOF)
    child.close()
    start, end = entries(private_state)
    assert end["event"] == "end" and end["exit"] == 129
    header, recorded = events(Path(end["recording"]["path"]))
    assert "before-hangup" in "".join(data for _, kind, data in recorded if kind == "o")
    assert dd("audit", "verify").code == 0
