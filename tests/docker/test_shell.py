"""`distrodebug shell` in a real pseudo-terminal: prompt, tools, resize, Ctrl-C, exit status."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import pexpect
import pytest

from tests.conftest import ours, run_to_end
from tests.fixtures.engine import changes

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("no_leftovers")]
PROMPT = r"\[distrodebug [^\]]+\] \S+ [#$] "


def spawn(toolbox: str, *args: str) -> pexpect.spawn:
    env = {**os.environ, "DISTRODEBUG_IMAGE": toolbox, "TERM": "xterm"}
    child = pexpect.spawn(sys.executable, ["-m", "distrodebug", "shell", *args], env=env,
                          encoding="utf-8", timeout=30, dimensions=(30, 100))
    return child


def test_interactive_session(toolbox: str, make_container: Any, python_image: str,
                             engine: Any) -> None:
    target = make_container(python_image, user="65532", read_only=True)
    before = target.diff()
    child = spawn(toolbox, target.name)
    child.expect("distrodebug: ")
    child.expect("SYS_PTRACE")
    child.expect(PROMPT)
    child.sendline("ps -o pid,user,args")
    child.expect(r"1 nonroot\s+/usr/bin/python3.11 app.py")
    child.expect(PROMPT)
    child.sendline("pwd; head -n 3 /app/app.py | wc -l")
    child.expect(r"/app\r\n\s*3\r\n")
    child.expect(PROMPT)
    child.setwinsize(41, 123)
    time.sleep(0.5)
    child.sendline("stty size")
    child.expect("41 123")
    child.expect(PROMPT)
    child.sendline("sleep 100")
    time.sleep(0.5)
    child.sendcontrol("c")
    child.expect(PROMPT)
    child.sendline("sleep 1000 & echo started")
    child.expect("started")
    child.expect(PROMPT)
    child.sendline("exit 7")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 7
    assert not [c for c in ours(engine) if c.labels.get("io.distrodebug.target") == target.name]
    assert target.diff() == before
    # The background sleep was reaped by the sidecar's reaper, not left as a zombie in the target.
    ps = run_to_end(engine, toolbox, ["ps", "-o", "stat,args"], pid_mode=f"container:{target.id}")
    assert b"sleep" not in ps, ps.decode()


def test_terminal_restored_and_sidecar_removed_on_hangup(toolbox: str, make_container: Any,
                                                         static_image: str, engine: Any) -> None:
    target = make_container(static_image)
    child = spawn(toolbox, target.name)
    child.expect(PROMPT)
    child.kill(1)  # SIGHUP: the terminal closed
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 129 or child.signalstatus is not None  # 128 + SIGHUP
    deadline = time.time() + 10
    while time.time() < deadline and [
        c for c in ours(engine) if c.labels.get("io.distrodebug.target") == target.name
    ]:
        time.sleep(0.2)
    assert not [c for c in ours(engine) if c.labels.get("io.distrodebug.target") == target.name]


def test_shell_on_stopped_container_is_a_throwaway_copy(toolbox: str, make_container: Any,
                                                        static_image: str, engine: Any) -> None:
    target = make_container(static_image)
    target.stop(timeout=2)
    target.reload()
    finished = target.attrs["State"]["FinishedAt"]
    child = spawn(toolbox, target.name)
    child.expect("discarded on exit")
    child.expect(PROMPT)
    child.sendline("ls /app && touch /scratch && echo wrote")
    child.expect("wrote")
    child.expect(PROMPT)
    child.sendline("exit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    target.reload()
    assert target.status == "exited"
    assert target.attrs["State"]["FinishedAt"] == finished  # never started again
    assert changes(target) == []
