"""Interrupted sessions leave nothing behind, on the real engine (issue 11: items 5, 6, 13, 19).

Nothing here stops the machine's engine: engine loss is a relay on a unix socket that the test
owns and cuts, so only this test's connection dies.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from distrodebug import labels
from tests.conftest import TEST_LABEL, run_to_end

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("no_leftovers")]


@pytest.fixture(scope="module")
def bare_toolbox(engine: Any, toolbox: str) -> Iterator[str]:
    """The toolbox without our subreaper: what any other debug image looks like to us."""
    dockerfile = (f"FROM {toolbox}\nRUN rm {labels_reaper_path(engine, toolbox)}\n"
                  f'LABEL {labels.REAPER}=""\n')
    image, _ = engine.images.build(fileobj=io.BytesIO(dockerfile.encode()), pull=False, rm=True,
                                   labels={TEST_LABEL: "1"}, tag="distrodebug-test/bare-toolbox:1")
    yield "distrodebug-test/bare-toolbox:1"


def labels_reaper_path(engine: Any, image: str) -> str:
    return str(engine.images.get(image).labels[labels.REAPER])


def zombies(engine: Any, toolbox: str, target: Any) -> list[str]:
    """Zombie processes (state Z) in the target's PID namespace."""
    out = run_to_end(engine, toolbox, ["ps", "-o", "pid,ppid,stat,args"],
                     pid_mode=f"container:{target.id}")
    rows = [line.split(None, 3) for line in out.decode().splitlines()[1:]]
    return [" ".join(r) for r in rows if len(r) >= 3 and "Z" in r[2]]


def in_target(engine: Any, toolbox: str, target: Any, word: str) -> bool:
    """True when a process whose command line holds ``word`` runs in the target's namespace."""
    out = run_to_end(engine, toolbox, ["ps", "-o", "args"], pid_mode=f"container:{target.id}")
    return word in out.decode()


def spawn(image: str, *args: str, **popen: Any) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DISTRODEBUG_IMAGE": image, **popen.pop("env", {})}
    popen.setdefault("stdin", subprocess.DEVNULL)
    popen.setdefault("stdout", subprocess.PIPE)
    popen.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen([sys.executable, "-m", "distrodebug", *args], env=env, **popen)


def wait_for(predicate: Callable[[], Any], seconds: float = 30) -> Any:
    deadline = time.monotonic() + seconds
    while not (value := predicate()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return value


def sidecars_of(engine: Any, target: Any) -> list[Any]:
    """Every container, image and volume of ours made for ``target``, but its warm sidecar:
    shared by later commands, it stays until idle (test_warm.py)."""
    api, tool = engine.api, {"label": f"{labels.TOOL_KEY}={labels.TOOL}"}
    found = [*api.containers(all=True, filters=tool), *api.images(filters=tool),
             *((api.volumes(filters=tool) or {}).get("Volumes") or [])]
    return [o for o in found if (o.get("Labels") or {}).get(labels.TARGET) == target.name
            and (o.get("Labels") or {}).get(labels.ROLE) != "warm"]


# -------------------------------------------------------------------- item 5: zombies


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
@pytest.mark.parametrize("reaper", [True, False], ids=["toolbox", "without-reaper"])
def test_interrupted_exec_leaves_no_zombie_in_the_target(
        engine: Any, toolbox: str, bare_toolbox: str, make_container: Any, static_image: str,
        sig: int, reaper: bool) -> None:
    target = make_container(static_image)
    proc = spawn(toolbox if reaper else bare_toolbox, "exec", target.name, "--",
                 "sh", "-c", "sleep 101 & sleep 102")
    assert wait_for(lambda: in_target(engine, toolbox, target, "sleep 102")), "never started"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    assert b"Traceback" not in err
    assert not sidecars_of(engine, target)
    assert zombies(engine, toolbox, target) == []


def test_background_job_of_a_finished_command_is_reaped_without_our_image(
        engine: Any, toolbox: str, bare_toolbox: str, make_container: Any,
        static_image: str) -> None:
    target = make_container(static_image)
    proc = spawn(bare_toolbox, "exec", target.name, "--", "sh", "-c", "sleep 1 &")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    time.sleep(1.5)  # the sleep has ended by now, wherever it went
    assert zombies(engine, toolbox, target) == []


@pytest.mark.parametrize("reaper", [True, False], ids=["toolbox", "without-reaper"])
def test_interrupted_dump_leaves_no_zombie_in_the_target(
        engine: Any, toolbox: str, bare_toolbox: str, make_container: Any,
        big_target: Callable[[], Any], tmp_path: Path, reaper: bool) -> None:
    target = big_target()
    proc = spawn(toolbox if reaper else bare_toolbox, "dump", target.name, "-f",
                 str(tmp_path / "b.tar"))
    assert wait_for(lambda: any(tmp_path.iterdir()), 60), "never started"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert not list(tmp_path.iterdir())
    assert zombies(engine, toolbox, target) == []


@pytest.fixture
def big_target(make_container: Any, toolbox: str) -> Callable[[], Any]:
    """A running target with 200 MB of files, so that a dump of it takes a while."""
    def make() -> Any:
        target = make_container(toolbox, entrypoint=[
            "/bin/sh", "-c", "mkdir /big && for i in 1 2 3 4; do head -c 50000000 /dev/zero "
            "> /big/f$i; done; touch /ready; exec sleep 1000"])
        assert wait_for(lambda: target.exec_run(["test", "-e", "/ready"]).exit_code == 0, 60)
        return target
    return make


# -------------------------------------------------------------------- item 13: broken pipe


@pytest.mark.parametrize("command", [["exec", "{t}", "--", "yes"], ["dump", "{t}", "-f", "-"]])
def test_broken_stdout_pipe_exits_141_and_removes_the_sidecar(
        engine: Any, toolbox: str, make_container: Any, static_image: str,
        command: list[str]) -> None:
    target = make_container(static_image)
    proc = spawn(toolbox, *(word.format(t=target.name) for word in command))
    assert proc.stdout is not None
    assert proc.stdout.read(1)
    proc.stdout.close()  # what `| head -c1` does
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 141, err  # 128 + SIGPIPE, as the shell reports a piped tool's death
    assert b"Traceback" not in err and err.count(b"\n") <= 1, err
    assert not sidecars_of(engine, target)
    assert zombies(engine, toolbox, target) == []


# -------------------------------------------------------------------- item 6: every phase


@pytest.mark.parametrize("running", [True, False], ids=["running", "stopped"])
def test_sigterm_at_any_moment_of_a_session_leaves_nothing(
        engine: Any, toolbox: str, make_container: Any, static_image: str, running: bool) -> None:
    """From start-up to the command's run, in steps of 60 ms: whatever was made is removed."""
    target = make_container(static_image)
    if not running:
        target.stop(timeout=1)
    outcomes = []
    for step in range(20):
        proc = spawn(toolbox, "exec", target.name, "--", "sleep", "30")
        time.sleep(0.25 + step * 0.06)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        outcomes.append(proc.returncode)
        assert proc.returncode in (143, -signal.SIGTERM), err  # -15: before Python's handler
        assert b"Traceback" not in err, err
        assert not sidecars_of(engine, target), f"left behind at {0.25 + step * 0.06:.2f} s"
    assert 143 in outcomes, "no run got far enough to create anything"


def test_cleanup_removes_the_partial_bundle_of_a_killed_dump(
        engine: Any, toolbox: str, make_container: Any, tmp_path: Path) -> None:
    """Issue 11, item 6: `cleanup` never found the hidden partial file a killed dump left."""
    # A target with 400 MB to dump, so the dump is still writing when the test looks (a small
    # one was done before the first look now and then, on Podman).
    target = make_container(toolbox, command=["sh", "-c", "head -c 400000000 /dev/zero > /tmp/big; "
                                              "touch /tmp/ready; sleep 3600"])
    deadline = time.monotonic() + 60
    while target.exec_run(["test", "-e", "/tmp/ready"]).exit_code != 0:
        assert time.monotonic() < deadline, "the target never wrote its big file"
        time.sleep(0.2)
    env = {**os.environ, "DISTRODEBUG_IMAGE": toolbox, "XDG_STATE_HOME": str(tmp_path / "state")}
    out = tmp_path / "incident.tar"
    dump = subprocess.Popen([sys.executable, "-m", "distrodebug", "dump", target.name, "-f",
                             str(out)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".incident.tar.partial-*")):
        assert time.monotonic() < deadline and dump.poll() is None, "the dump never started writing"
        time.sleep(0.05)
    dump.send_signal(signal.SIGKILL)  # nothing of ours runs after this
    dump.wait()
    assert list(tmp_path.glob(".incident.tar.partial-*"))
    ran = subprocess.run([sys.executable, "-m", "distrodebug", "cleanup"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert "partial bundle" in ran.stderr
    assert not list(tmp_path.glob(".incident.tar.partial-*")) and not out.exists()


class _Relay:
    """A unix-socket relay to the real engine's socket that the test cuts, so only connections
    through it die, never the engine the rest of the suite uses. It slows bulk data down (a
    millisecond per 64 KiB) so a cut lands mid-stream, whatever the machine's speed."""

    def __init__(self, path: Path) -> None:
        import socket
        import threading

        self.path = path
        # The engine this run tests: Docker's socket, or the Podman lane's (DOCKER_HOST).
        host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        self.engine = host.removeprefix("unix://")
        self._server = socket.socket(socket.AF_UNIX)
        self._server.bind(str(path))
        self._server.listen(64)
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                near, _ = self._server.accept()
            except OSError:
                return
            far = socket.socket(socket.AF_UNIX)
            far.connect(self.engine)
            self._open += [near, far]
            for a, b in ((near, far), (far, near)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: Any, b: Any) -> None:
        import socket

        try:
            while data := a.recv(1 << 16):
                b.sendall(data)
                time.sleep(0.001)
            b.shutdown(socket.SHUT_WR)  # pass a half-close on (attach: stdin ended)
        except OSError:
            pass

    def cut(self) -> None:
        import socket

        self._server.close()
        self.path.unlink()
        for sock in self._open:
            try:
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            except OSError:
                pass


def test_engine_lost_mid_dump_says_so_and_that_no_bundle_was_written(
        engine: Any, toolbox: str, make_container: Any, tmp_path: Path) -> None:
    """Issue 11, item 13: engine loss showed only a removal error, not the cause or the bundle."""
    target = make_container(toolbox, command=["sh", "-c",
                                              "head -c 200000000 /dev/urandom > /big; sleep 600"])
    deadline = time.monotonic() + 60
    while target.exec_run(["sh", "-c", "test $(stat -c %s /big) -ge 200000000"]).exit_code:
        assert time.monotonic() < deadline
        time.sleep(0.5)
    relay = _Relay(tmp_path / "engine.sock")
    out = tmp_path / "incident.tar"
    env = {**os.environ, "DISTRODEBUG_IMAGE": toolbox, "DOCKER_HOST": f"unix://{relay.path}",
           "XDG_STATE_HOME": str(tmp_path / "state")}
    dump = subprocess.Popen([sys.executable, "-m", "distrodebug", "dump", target.name, "-f", str(out)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".incident.tar.partial-*")):
        assert dump.poll() is None, "the dump ended before it wrote anything"
        assert time.monotonic() < deadline, "the dump never started writing"
        time.sleep(0.02)
    time.sleep(0.5)
    relay.cut()
    _, err = dump.communicate(timeout=120)
    assert dump.returncode == 125, err
    assert "Traceback" not in err and "stopped answering" in err, err
    assert "No bundle was written" in err, err
    assert not out.exists() and not list(tmp_path.glob(".incident.tar.partial-*"))
    # The lost connection left the sidecar, as the message says: cleanup, via the real socket.
    done = subprocess.run([sys.executable, "-m", "distrodebug", "cleanup"], capture_output=True,
                          text=True, env={**env, "DOCKER_HOST": f"unix://{relay.engine}"},
                          timeout=120)
    assert done.returncode == 0, done.stderr
