"""Ctrl-C at any moment of a command, in a real terminal: one paragraph, 130, nothing left
behind, never a Python traceback (issue 11, item 19)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import pexpect
import pytest

from tests.conftest import ours

pytestmark = [pytest.mark.engine]
#: Moments after the start: while our modules import, while the engine creates, while bytes
#: flow. Not before ~0.1 s: an interrupt while the interpreter itself starts (its site import)
#: comes before any code of ours runs and is the interpreter's to report.
MOMENTS = (0.15, 0.25, 0.4, 0.7, 1.2)


def interrupted(argv: list[str], env: dict[str, str], after: float) -> tuple[int | None, str]:
    child = pexpect.spawn(argv[0], argv[1:], env=env, encoding="utf-8", timeout=60,
                          dimensions=(24, 80))
    time.sleep(after)
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    # Killed by the signal itself (it came as the interpreter exited): what a shell calls 130.
    code = child.exitstatus if child.exitstatus is not None else 128 + (child.signalstatus or 0)
    return code, child.before or ""


@pytest.mark.parametrize("after", MOMENTS)
def test_ctrl_c_during_exec_and_cp(after: float, engine: Any, toolbox: str, make_container: Any,
                                   static_image: str, tmp_path: Path) -> None:
    target = make_container(static_image)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(8 << 20))
    env = {**os.environ, "DISTRODEBUG_IMAGE": toolbox}
    for argv in ([sys.executable, "-m", "distrodebug", "exec", target.name, "--", "sleep", "30"],
                 [sys.executable, "-m", "distrodebug", "cp", str(big), f"{target.name}:/tmp/"],
                 ["distrodebug", "exec", target.name, "--", "sleep", "30"]):
        code, output = interrupted(argv, env, after)
        assert "Traceback" not in output and "KeyboardInterrupt" not in output, (argv, after, output)
        # A command that finished before the interrupt (a quick cp) may rightly exit 0.
        assert code in (130, 0), (argv, after, code, output)
    deadline = time.monotonic() + 15
    while [c for c in ours(engine) if target.id in str(c.attrs.get("HostConfig", {}))]:
        assert time.monotonic() < deadline, "a sidecar was left behind"
        time.sleep(0.5)
