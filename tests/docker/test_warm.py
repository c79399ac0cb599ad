"""Warm sidecars on the real engine: later commands on a target reuse one (issue 12)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.conftest import ours
from tests.fixtures.engine import changes, engine_differs

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("no_leftovers")]

#: The reuse tests' premise is Docker's: on Podman the runtime starts no warm sidecar (Podman will
#: not remove a container another one joins, so an idle sidecar would block `podman rm -f`).
DOCKER_ONLY = engine_differs("podman", "the runtime starts no warm sidecars on Podman "
                             "(DockerRuntime.start_sidecar)")


def warm_of(engine: Any, target: Any) -> list[Any]:
    """Running warm sidecars joined to ``target``."""
    return [c for c in ours(engine, warm=True)
            if c.labels.get("io.distrodebug.role") == "warm" and c.status == "running"
            and c.attrs["HostConfig"]["PidMode"] == f"container:{target.id}"]


@DOCKER_ONLY
def test_second_exec_reuses_the_sidecar_and_keeps_each_status(dd: Any, engine: Any,
                                                              make_container: Any,
                                                              static_image: str) -> None:
    target = make_container(static_image)
    first = dd("exec", target.name, "--", "sh", "-c", "echo one; exit 3")
    assert (first.code, first.out) == (3, "one\n"), first.err
    [sidecar] = warm_of(engine, target)
    second = dd("exec", target.name, "--", "sh", "-c", "cat; echo two >&2; exit 4", input="in\n")
    assert (second.code, second.out) == (4, "in\n") and "two" in second.err
    assert [c.id for c in warm_of(engine, target)] == [sidecar.id]
    # The reaper is its first process and the idle loop its child; nothing was written into
    # the target, and the sidecar is no session's: it carries the engine's AutoRemove.
    assert sidecar.attrs["HostConfig"]["AutoRemove"] is True
    assert changes(target) == []


@DOCKER_ONLY
def test_reuse_never_mixes_targets_or_privileges(dd: Any, engine: Any, make_container: Any,
                                                 static_image: str) -> None:
    one, two = make_container(static_image), make_container(static_image)
    assert dd("exec", one.name, "--", "true").code == 0
    assert dd("exec", two.name, "--", "true").code == 0
    plain = dd("exec", one.name, "--", "grep", "CapEff", "/proc/self/status")
    wider = dd("exec", "--cap-add", "NET_ADMIN", one.name, "--", "grep", "CapEff",
               "/proc/self/status")
    assert plain.code == wider.code == 0, (plain.err, wider.err)
    net_admin = 1 << 12
    assert not int(plain.out.split()[1], 16) & net_admin
    assert int(wider.out.split()[1], 16) & net_admin
    assert len(warm_of(engine, one)) == 2 and len(warm_of(engine, two)) == 1
    hashes = {c.labels["io.distrodebug.warm"] for c in warm_of(engine, one) + warm_of(engine, two)}
    assert len(hashes) == 3


@DOCKER_ONLY
def test_interrupted_command_is_ended_and_the_sidecar_stays(dd: Any, engine: Any,
                                                           make_container: Any, toolbox: str,
                                                           static_image: str) -> None:
    target = make_container(static_image)
    assert dd("exec", target.name, "--", "true").code == 0
    env = {**__import__("os").environ, "DISTRODEBUG_IMAGE": toolbox}
    proc = subprocess.Popen([sys.executable, "-m", "distrodebug", "exec", target.name, "--",
                             "sh", "-c", "echo started; exec sleep 311"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"started\n"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    deadline = time.monotonic() + 10
    while True:
        looked = dd("exec", target.name, "--", "sh", "-c",
                    "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '")
        if "sleep 311" not in looked.out or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert "sleep 311" not in looked.out
    assert len(warm_of(engine, target)) == 1
    # No zombie was left to the target's PID 1 either.
    states = dd("exec", target.name, "--", "sh", "-c", "cat /proc/[0-9]*/stat")
    assert " Z " not in states.out


@DOCKER_ONLY
def test_idle_sidecar_ends_and_is_removed(dd: Any, engine: Any, make_container: Any,
                                          static_image: str) -> None:
    target = make_container(static_image)
    assert dd("exec", target.name, "--", "true", env={"DISTRODEBUG_WARM_IDLE": "5"}).code == 0
    [sidecar] = warm_of(engine, target)
    deadline = time.monotonic() + 40
    while [c for c in ours(engine, warm=True) if c.id == sidecar.id]:
        assert time.monotonic() < deadline, "the idle warm sidecar did not end"
        time.sleep(1)


@DOCKER_ONLY
def test_a_target_that_stops_takes_its_warm_sidecar_and_the_next_exec_starts_afresh(
        dd: Any, engine: Any, make_container: Any, static_image: str) -> None:
    target = make_container(static_image)
    assert dd("exec", target.name, "--", "true").code == 0
    [old] = warm_of(engine, target)
    target.restart(timeout=1)
    deadline = time.monotonic() + 20
    while [c for c in ours(engine, warm=True) if c.id == old.id]:
        assert time.monotonic() < deadline, "the warm sidecar outlived its target's restart"
        time.sleep(0.5)
    target.reload()
    again = dd("exec", target.name, "--", "sh", "-c", "echo back")
    assert (again.code, again.out) == (0, "back\n"), again.err
    assert [c.id for c in warm_of(engine, target)] != [old.id]


def test_reuse_off_starts_one_sidecar_per_command(dd: Any, engine: Any, make_container: Any,
                                                  static_image: str) -> None:
    target = make_container(static_image)
    ran = dd("exec", target.name, "--", "true", env={"DISTRODEBUG_WARM_IDLE": "0"})
    assert ran.code == 0, ran.err
    assert warm_of(engine, target) == []


@DOCKER_ONLY
def test_sessions_lists_it_and_cleanup_leaves_it(dd: Any, engine: Any, make_container: Any,
                                                 static_image: str) -> None:
    target = make_container(static_image)
    assert dd("exec", target.name, "--", "true").code == 0
    [sidecar] = warm_of(engine, target)
    listed = json.loads(dd("sessions", "-o", "json").out)
    [row] = [item for item in listed["items"] if item["id"] == sidecar.id]
    assert row["alive"] is True and row["target"] == target.name
    assert dd("cleanup").code == 0
    assert [c.id for c in warm_of(engine, target)] == [sidecar.id]


def test_no_sidecar_of_ours_keeps_the_target_from_being_removed(dd: Any, engine: Any,
                                                                  make_container: Any,
                                                                  static_image: str) -> None:
    """Right after an exec the user may remove the target: on Docker the warm sidecar goes with
    it, on Podman (which refuses to remove a container others join) none was left beside it."""
    target = make_container(static_image)
    assert dd("exec", target.name, "--", "true").code == 0
    target.remove(force=True)
    deadline = time.monotonic() + 10
    while warm_of(engine, target) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert warm_of(engine, target) == []
