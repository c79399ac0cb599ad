"""Sessions at their edges, on the real engine (issue 11: items 7, 13, 14, 19)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

import pexpect
import pytest

from tests.conftest import ours

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("no_leftovers")]
PROMPT = r"\[distrodebug [^\]]+\] \S+ [#$] "


def test_user_root_on_a_non_root_target_reads_its_root(dd: Any, make_container: Any,
                                                       python_image: str) -> None:
    target = make_container(python_image, user="65532")
    ran = dd("exec", "--user", "0", target.name, "--", "ls", "/app")
    assert ran.code == 0 and "app.py" in ran.out, ran.err


def test_empty_image_is_refused(dd: Any, make_container: Any, static_image: str) -> None:
    target = make_container(static_image)
    ran = dd("exec", "--image", "", target.name, "--", "true")
    assert ran.code == 2 and "--image" in ran.err, ran.err


def test_pausing_the_target_does_not_change_a_finished_commands_status(
        toolbox: str, make_container: Any, static_image: str) -> None:
    target = make_container(static_image)
    env = {**os.environ, "DISTRODEBUG_IMAGE": toolbox}
    proc = subprocess.Popen([sys.executable, "-m", "distrodebug", "exec", target.name, "--",
                             "sh", "-c", "sleep 3; echo done"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    time.sleep(1.5)
    target.pause()
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        target.unpause()
    assert proc.returncode == 0 and "done" in out, err


@pytest.mark.parametrize("writes", [["\x1d", "\x1d"], ["\x1d\x1d"]], ids=["apart", "together"])
def test_detach_keys_end_the_session_at_once(toolbox: str, make_container: Any,
                                             static_image: str, engine: Any,
                                             writes: list[str]) -> None:
    # Keys typed fast or pasted reach the terminal in one write: Podman's own detection missed
    # them then (it wants each key in a read of its own), and the shell got them.
    target = make_container(static_image)
    env = {**os.environ, "DISTRODEBUG_IMAGE": toolbox, "TERM": "xterm"}
    child = pexpect.spawn(sys.executable, ["-m", "distrodebug", "shell", target.name], env=env,
                          encoding="utf-8", timeout=30, dimensions=(30, 100))
    try:
        child.expect(PROMPT)
        started = time.monotonic()
        for write in writes:
            child.send(write)
        child.expect(pexpect.EOF, timeout=30)
    finally:
        # Also when the keys did not end it: a session left running keeps its sidecar, which
        # Podman will not let the target be removed past. A hangup ends it as a closed
        # terminal would, its sidecar removed.
        if child.isalive():
            child.kill(signal.SIGHUP)
            deadline = time.monotonic() + 30
            while child.isalive() and time.monotonic() < deadline:
                time.sleep(0.2)
        child.close(force=True)
    assert time.monotonic() - started < 20
    assert child.exitstatus == 0, child.before
    assert "detached (Ctrl-] Ctrl-])" in (child.before or "")
    assert "stopped answering" not in (child.before or "")
    assert not [c for c in ours(engine) if c.labels.get("io.distrodebug.target") == target.name]
