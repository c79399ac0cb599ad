"""Rootless Podman, for real: a service run by an unprivileged user (tests.fixtures.podman).

Its containers run in a user namespace the user owns, and on this machine's cgroup v1 it
manages no cgroups: every container of the user, ours and the target alike, is in one cgroup.
What is checked here is what the README's Podman section says works and what doctor warns of.
The service, the user's image store and the containers are the user's own; nothing here
touches the rootful engines the other tests use.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest

from tests.conftest import TEST_LABEL
from tests.fixtures.engine import fail_or_skip
from tests.fixtures.images import ensure_python_target, ensure_static_target, ensure_toolbox

pytestmark = pytest.mark.engine
PROMPT = r"\[distrodebug [^\]]+\] \S+ [#$] "


class Rootless:
    """The rootless engine: its DOCKER_HOST, a client, and the offline images loaded into it."""

    def __init__(self, url: str, client: Any) -> None:
        self.url = url
        self.client = client
        self.toolbox = ensure_toolbox(client)
        self.static_nonroot = ensure_static_target(client, nonroot=True)
        self.python = ensure_python_target(client)

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "DOCKER_HOST": self.url, "DISTRODEBUG_IMAGE": self.toolbox}
        return subprocess.run([sys.executable, "-m", "distrodebug", *args], env=env, text=True,
                              capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def ours(self) -> list[Any]:
        return self.client.containers.list(all=True, filters={"label": "io.distrodebug.tool"})


@pytest.fixture(scope="module")
def rootless() -> Iterator[Rootless]:
    from tests.fixtures import podman

    if "podman" not in os.environ.get("DISTRODEBUG_ENGINES", "podman").split(","):
        pytest.skip("DISTRODEBUG_ENGINES leaves Podman out")
    try:
        url = podman.ensure_rootless_service()
    except podman.Unavailable as exc:
        fail_or_skip(f"no rootless Podman service ({exc})")
    import docker

    # The image builders find the engine as the CLI does, through DOCKER_HOST.
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DOCKER_HOST", url)
        client = docker.DockerClient(base_url=url, timeout=120)
        yield Rootless(url, client)
        client.close()


@pytest.fixture
def target(rootless: Rootless, request: pytest.FixtureRequest) -> Iterator[Any]:
    image = getattr(request, "param", None) or rootless.static_nonroot
    container = rootless.client.containers.run(
        getattr(rootless, image, image), detach=True, labels={TEST_LABEL: "1"},
        name=f"ddtest-rootless-{uuid.uuid4().hex[:8]}")
    yield container
    container.remove(force=True)


def test_doctor_says_the_engine_is_rootless_and_what_that_costs(rootless: Rootless) -> None:
    ran = rootless.run("doctor")
    assert ran.returncode == 0, ran.stderr
    out = " ".join((ran.stdout + ran.stderr).split())
    assert "Podman 4" in out
    # Podman's compat info says rootless in a field of its own, not in SecurityOptions.
    assert "rootless engine" in out and "only this user's containers" in out
    if rootless.client.info().get("CgroupVersion") == "1":
        assert "no limit is enforced" in out


def test_exec_reads_a_non_root_target_through_its_root(rootless: Rootless, target: Any) -> None:
    ran = rootless.run("exec", target.name, "--", "sh", "-c",
                       "cat /proc/1/status | grep ^Uid; ls /proc/1/root/app")
    assert ran.returncode == 0, ran.stderr
    assert "65532" in ran.stdout and "/proc/1/root/app" in ran.stdout
    assert not rootless.ours()


@pytest.mark.parametrize("target", ["python"], indirect=True)
def test_dump_lists_the_targets_processes_in_a_shared_cgroup(
        rootless: Rootless, target: Any, tmp_path: Path) -> None:
    """Every container of the user shares one cgroup here: the dump took the target's processes
    for the sidecar's own and listed none."""
    bundle = tmp_path / "b.tar"
    ran = rootless.run("dump", target.name, "-f", str(bundle))
    assert ran.returncode == 0, ran.stderr
    with tarfile.open(bundle) as tar:
        member = tar.extractfile("meta/processes.json")
        assert member is not None
        processes = json.load(member)
    assert [p["cmdline"][-1] for p in processes] == ["app.py"]
    assert rootless.run("verify", str(bundle)).returncode == 0
    assert not rootless.ours()


def test_cp_out_of_a_non_root_target(rootless: Rootless, target: Any, tmp_path: Path) -> None:
    ran = rootless.run("cp", f"{target.name}:/etc/passwd", str(tmp_path / "passwd"))
    assert ran.returncode == 0, ran.stderr
    assert "65532" in (tmp_path / "passwd").read_text()
    assert not rootless.ours()


def test_shell_in_a_terminal_resize_and_exit_status(rootless: Rootless, target: Any) -> None:
    env = {**os.environ, "DOCKER_HOST": rootless.url, "DISTRODEBUG_IMAGE": rootless.toolbox,
           "TERM": "xterm"}
    child = pexpect.spawn(sys.executable, ["-m", "distrodebug", "shell", target.name], env=env,
                          encoding="utf-8", timeout=60, dimensions=(30, 100))
    try:
        child.expect("on Podman 4")
        child.expect(PROMPT)
        child.sendline("ls /app; grep ^Uid /proc/1/status")
        child.expect(r"Uid:\s+65532")
        child.expect(PROMPT)
        child.setwinsize(41, 123)
        child.sendline("stty size")
        child.expect("41 123")
        child.expect(PROMPT)
        child.sendline("exit 7")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 7
    assert not rootless.ours()
