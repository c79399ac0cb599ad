"""Faults of servers and connections that the real cluster here does not have (issue 10, 8)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from tests.kubernetes.double.server import V4


def dd(kubeconfig: str, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": kubeconfig, "DISTRODEBUG_IMAGE": "tools:1"}
    return subprocess.run([sys.executable, "-m", "distrodebug", *args], input=input, env=env,
                          capture_output=True, text=True, timeout=60,
                          stdin=None if input is not None else subprocess.DEVNULL)


def test_a_server_without_ephemeral_containers_points_at_copy(double_factory: Callable[..., Any]) -> None:
    double, config = double_factory(ephemeral=False)
    ran = dd(config, "exec", "pod/api", "--", "true")
    assert ran.returncode == 125, ran.stderr
    assert "Ephemeral containers are disabled for this cluster" in ran.stderr
    assert "--copy" in ran.stderr and "Traceback" not in ran.stderr


def test_v4_only_server_refuses_piped_stdin_instead_of_hanging(double_factory: Callable[..., Any]) -> None:
    """Issue 10, item 8: on v4, closing stdin was a no-op and `echo x | exec -- cat` hung."""
    double, config = double_factory(protocols=(V4,))
    started = time.monotonic()
    ran = dd(config, "exec", "pod/api", "--", "cat", input="x\n")
    assert time.monotonic() - started < 30
    assert ran.returncode == 2, ran.stderr
    assert "v4 streaming protocol" in ran.stderr and "--no-stdin" in ran.stderr
    assert double.stdin_seen == b""


def test_v4_only_server_still_runs_commands_and_returns_their_status(
        double_factory: Callable[..., Any]) -> None:
    double, config = double_factory(protocols=(V4,), exit_code=3)
    ran = dd(config, "exec", "pod/api", "--no-stdin", "--", "echo", "hi")
    assert ran.returncode == 3, ran.stderr
    assert ran.stdout == "hello from the double\n"


def test_a_stream_that_breaks_mid_command_is_an_error_not_success(
        double_factory: Callable[..., Any]) -> None:
    double, config = double_factory(drop_after=2)
    ran = dd(config, "exec", "pod/api", "--", "echo", "hi")
    assert ran.returncode == 125, (ran.stdout, ran.stderr)
    assert ran.stdout == "hello from t"  # what arrived before the break, nothing invented
    assert "ended without an exit status" in ran.stderr


def test_kubelet_failure_after_the_upgrade_is_shown(double_factory: Callable[..., Any]) -> None:
    """Issue 10, item 7: only exit codes were read from channel 3; a failed exec said nothing."""
    reason = ('error executing command in container: failed to exec in container: OCI runtime '
              'exec failed: exec failed: unable to start container process: exec: "sh": '
              'executable file not found in $PATH: unknown')
    double, config = double_factory(failure=reason)
    ran = dd(config, "exec", "pod/api", "--", "true")
    assert ran.returncode == 125
    assert "OCI runtime exec failed" in ran.stderr and "could not run the command" in ran.stderr
