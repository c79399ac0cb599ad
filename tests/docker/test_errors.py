"""Bad input: one clear paragraph on stderr, a documented exit code, no traceback, nothing left."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ours
from tests.fixtures.engine import engine_differs

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("no_leftovers")]


def clean(err: str) -> None:
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("distrodebug: error: ")]
    assert len(errors) == 1, err


def test_unknown_container(dd: Any) -> None:
    ran = dd("exec", "no-such-container-xyz", "--", "true")
    assert ran.code == 125
    clean(ran.err)
    assert "docker ps -a" in ran.err


def test_ambiguous_prefix(dd: Any, make_container: Any, static_image: str) -> None:
    made = [make_container(static_image, start=False) for _ in range(40)]
    by_first: dict[str, list[Any]] = {}
    for container in made:
        by_first.setdefault(container.id[0], []).append(container)
    prefix = next(k for k, v in by_first.items() if len(v) > 1)
    ran = dd("exec", prefix, "--", "true")
    assert ran.code == 125
    clean(ran.err)
    assert "ambiguous" in ran.err.lower() or "matches" in ran.err


def test_no_engine(dd: Any) -> None:
    ran = dd("exec", "web", "--", "true", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert ran.code == 125
    clean(ran.err)
    assert "No Docker engine answers" in ran.err


def test_socket_permission_denied(toolbox: str, tmp_path: Any) -> None:
    """A user outside the docker group: the real socket refuses the connection."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to an unprivileged user")
    import distrodebug.cli.app

    # Walk the same code path once as root against a missing socket, so that every lazily
    # imported module is loaded before the child loses the right to read site-packages.
    with pytest.raises(SystemExit):
        previous = os.environ.get("DOCKER_HOST")  # the Podman lane's socket, or none
        os.environ["DOCKER_HOST"] = "unix:///nonexistent.sock"
        try:
            distrodebug.cli.app.main(["exec", "web", "--", "true"])
        finally:
            if previous is None:
                del os.environ["DOCKER_HOST"]
            else:
                os.environ["DOCKER_HOST"] = previous

    err_path = tmp_path / "err"
    err_path.touch()
    os.chmod(err_path, 0o666)
    # The audit log is checked before the engine is asked: nobody gets a state directory of its own.
    # (pytest's own temporary directories are root's alone, so one directly under /tmp.)
    state = Path(tempfile.mkdtemp(prefix="dd-nobody-"))
    os.chown(state, 65534, 65534)
    pid = os.fork()
    if pid == 0:  # the child drops to nobody and runs the CLI in-process
        try:
            sys.stderr = open(err_path, "w")  # noqa: SIM115  (the child exits right after)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            os.environ["HOME"] = "/tmp"
            os.environ["DISTRODEBUG_STATE_DIR"] = str(state)
            distrodebug.cli.app.main(["exec", "web", "--", "true"])
        except SystemExit as exc:
            sys.stderr.flush()
            os._exit(int(exc.code or 0))
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            os._exit(99)
    _, status = os.waitpid(pid, 0)
    shutil.rmtree(state, ignore_errors=True)
    err = err_path.read_text()
    assert os.waitstatus_to_exitcode(status) == 125, err
    clean(err)
    assert "Permission denied" in err and "docker' group" in err


def test_invalid_image_reference(dd: Any) -> None:
    ran = dd("exec", "--image-target", "Not A Ref::", "--", "true")
    assert ran.code == 2
    clean(ran.err)


def test_debug_image_missing_and_not_pullable(dd: Any, make_container: Any,
                                              static_image: str) -> None:
    target = make_container(static_image)
    ran = dd("exec", "--image", "distrodebug-missing/tools:0", target.name, "--", "true")
    assert ran.code == 125
    clean(ran.err)
    assert "distrodebug-missing/tools:0" in ran.err and "toolbox build" in ran.err


def test_paused_target(dd: Any, make_container: Any, static_image: str) -> None:
    target = make_container(static_image)
    target.pause()
    try:
        ran = dd("exec", target.name, "--", "true")
    finally:
        target.unpause()
    assert ran.code == 125
    clean(ran.err)
    assert "docker unpause" in ran.err


def test_sidecar_fails_to_start(dd: Any, make_container: Any, static_image: str) -> None:
    target = make_container(static_image)
    ran = dd("exec", "--image", static_image, target.name, "--", "true")  # no /bin/sh in it
    assert ran.code == 125
    clean(ran.err)
    assert "sidecar" in ran.err


def test_shell_needs_a_terminal(dd: Any, make_container: Any, static_image: str) -> None:
    target = make_container(static_image)
    ran = dd("shell", target.name)
    assert ran.code == 2
    clean(ran.err)
    assert "distrodebug exec" in ran.err


@engine_differs("podman", "it refuses to remove a container while another joins its namespaces "
                "('has dependent containers'), so the target outlives the session")
def test_target_removed_during_session(toolbox: str, make_container: Any, static_image: str,
                                       engine: Any) -> None:
    target = make_container(static_image)
    refused: list[Exception] = []  # the engine's answer, for the report, not a thread's traceback

    def remove() -> None:
        try:
            target.remove(force=True)
        except Exception as exc:  # noqa: BLE001 - any refusal is the finding
            refused.append(exc)

    threading.Timer(2.0, remove).start()
    proc = subprocess.run(
        [sys.executable, "-m", "distrodebug", "exec", target.name, "--", "sleep", "30"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        env={**os.environ, "DISTRODEBUG_IMAGE": toolbox},
    )
    assert not refused, f"the engine refused to remove the target: {refused[0]}"
    assert proc.returncode == 125
    clean(proc.stderr)
    assert "removed while the session ran" in proc.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_during_exec_removes_sidecar(toolbox: str, make_container: Any, static_image: str,
                                            engine: Any, sig: int) -> None:
    target = make_container(static_image)
    proc = subprocess.Popen(
        [sys.executable, "-m", "distrodebug", "exec", target.name, "--", "sleep", "30"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
        env={**os.environ, "DISTRODEBUG_IMAGE": toolbox},
    )
    deadline = time.time() + 30
    while time.time() < deadline and not [
        c for c in ours(engine, warm=True) if c.labels.get("io.distrodebug.target") == target.name
    ]:
        time.sleep(0.1)
    time.sleep(0.3)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + sig  # 130 for Ctrl-C, 143 for SIGTERM
    clean(err)
    assert not [c for c in ours(engine) if c.labels.get("io.distrodebug.target") == target.name]
