"""The offline images are faithful: no shell where distroless has none, a working toolbox,
and a reaper that leaves nothing behind in the target's PID namespace."""

from __future__ import annotations

import contextlib
import tarfile
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import docker.errors
import pytest

from distrodebug import toolbox as builders
from tests.fixtures import images as fixtures
from tests.fixtures.engine import require_engine

pytestmark = pytest.mark.engine
CLIENT = require_engine()
LABELS = {"io.distrodebug.test": "1"}
REAPER = builders.REAPER_PATH.rsplit("/", 1)[1]


# The toolbox, python_image and static_image fixtures come from tests/conftest.py.


@contextlib.contextmanager
def container(image: str, command: Any = None, **options: Any) -> Iterator[Any]:
    """A created (not started) container that is removed whatever happens."""
    created = CLIENT.containers.create(image, command, labels=LABELS, **options)
    try:
        yield created
    finally:
        created.remove(force=True)


@contextlib.contextmanager
def running(image: str, command: Any = None, **options: Any) -> Iterator[Any]:
    with container(image, command, **options) as started:
        started.start()
        yield started


def run(image: str, command: Any, **options: Any) -> tuple[int, str]:
    """Run to completion; (exit status, stdout+stderr)."""
    with container(image, command, **options) as done:
        done.start()
        status = done.wait(timeout=60)["StatusCode"]
        return status, done.logs().decode()


def in_target(toolbox: str, target: Any, script: str) -> tuple[int, str]:
    """Run a toolbox shell script inside the target's PID and network namespaces."""
    join = f"container:{target.id}"
    return run(toolbox, ["sh", "-c", script], pid_mode=join, network_mode=join)


def processes(toolbox: str, target: Any) -> list[tuple[str, str, str, str]]:
    """(pid, ppid, stat, args) of each process in the target's PID namespace but the observer."""
    status, out = in_target(toolbox, target, "echo $$; exec ps -o pid,ppid,stat,args")
    assert status == 0, out
    observer, _header, *lines = out.splitlines()
    rows = [line.split(None, 3) for line in lines]
    return [(r[0], r[1], r[2], r[3]) for r in rows if len(r) == 4 and r[0] != observer]


def wait_until(predicate: Any, seconds: float = 20.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.3)


def image_files(ref: str) -> set[str]:
    """Every path in the image's layers (the images here have exactly one layer)."""
    names: set[str] = set()
    with tempfile.TemporaryFile() as saved:
        for chunk in CLIENT.images.get(ref).save(named=False):
            saved.write(chunk)
        saved.seek(0)
        with tarfile.open(fileobj=saved) as outer:
            for member in outer.getmembers():
                if member.name.endswith("layer.tar"):
                    layer = outer.extractfile(member)
                    assert layer is not None
                    with tarfile.open(fileobj=layer) as inner:
                        names.update(n.removeprefix("./").rstrip("/") for n in inner.getnames())
    names.discard("")
    return names


# -------------------------------------------------------------------------- python target


def test_python_image_has_no_shell(python_image: str) -> None:
    files = image_files(python_image)
    assert "usr/bin/python3.11" in files
    assert not [f for f in files if f.rsplit("/", 1)[-1] in builders.SHELL_NAMES]
    binaries = {f for f in files if f.rsplit("/", 1)[0] in ("bin", "sbin", "usr/bin", "usr/sbin")}
    assert binaries == {"usr/bin/python3", "usr/bin/python3.11"}
    for shell in ("/bin/sh", "/bin/bash", "/usr/bin/dash", "/bin/busybox"):
        with container(python_image, entrypoint=[shell]) as attempt:
            with pytest.raises(docker.errors.APIError, match="no such file"):
                attempt.start()


def test_python_image_config(python_image: str) -> None:
    config = CLIENT.images.get(python_image).attrs["Config"]
    assert config["Entrypoint"] == [builders.PYTHON_ENTRYPOINT]
    assert config["Cmd"] == ["app.py"]
    assert config["WorkingDir"] == "/app"
    assert "8080/tcp" in config["ExposedPorts"]


def test_python_app_serves_as_nonroot_on_read_only_root(python_image: str, toolbox: str) -> None:
    with running(python_image, user="65532", read_only=True) as app:
        get = "wget -qO- http://127.0.0.1:8080/healthz"
        answered = wait_until(lambda: in_target(toolbox, app, get)[1] == "ok\n")
        assert answered, app.logs().decode()
        assert "distrodebug demo" in in_target(toolbox, app, "wget -qO- http://127.0.0.1:8080/")[1]
        status, uid = in_target(toolbox, app, "grep ^Uid: /proc/1/status")
        assert uid.split()[1:] == ["65532"] * 4
        assert '"GET /healthz HTTP/1.1" 200' in app.logs(stdout=False).decode()
        app.stop(timeout=10)
        assert app.wait(timeout=30)["StatusCode"] == 0  # SIGTERM handled as PID 1


# -------------------------------------------------------------------------- static target


def test_static_target_has_only_app(static_image: str) -> None:
    assert image_files(static_image) == {"app", "etc", "etc/passwd", "etc/group", "tmp"}
    nonroot = fixtures.ensure_static_target(CLIENT, nonroot=True)
    assert CLIENT.images.get(nonroot).attrs["Config"]["User"] == "65532"
    assert CLIENT.images.get(nonroot).attrs["Config"]["Cmd"] == ["/app"]


@pytest.mark.parametrize("nonroot", [False, True])
def test_static_target_serves_and_stops(toolbox: str, nonroot: bool) -> None:
    with running(fixtures.ensure_static_target(CLIENT, nonroot)) as app:
        reply = wait_until(lambda: in_target(toolbox, app, "nc 127.0.0.1 8080 </dev/null")[1])
        assert reply == "hello from the static target\n"
        assert "0.0.0.0:8080" in in_target(toolbox, app, "netstat -ltn")[1]
        app.stop(timeout=10)
        assert app.wait(timeout=30)["StatusCode"] == 0


# -------------------------------------------------------------------------------- toolbox


def test_toolbox_shell_and_hard_links(toolbox: str) -> None:
    assert run(toolbox, ["sh", "-c", "echo ok"]) == (0, "ok\n")
    status, out = run(toolbox, ["sh", "-c", "stat -c %h:%i /bin/busybox /bin/sh /bin/ls; "
                                            "find / -xdev -type l | grep -c /bin/"])
    busybox, sh, ls, symlinks = out.split()
    assert busybox == sh == ls and int(busybox.split(":")[0]) > 100
    assert symlinks == "0"  # absolute symlinks would break after a chroot into the target
    config = CLIENT.images.get(toolbox).attrs["Config"]
    assert config["Labels"][builders.REAPER_LABEL] == builders.REAPER_PATH
    assert "PATH=/bin:/usr/local/bin" in config["Env"]


def test_volume_copy_of_toolbox_keeps_hard_links(toolbox: str) -> None:
    volume = CLIENT.volumes.create(labels=LABELS)
    try:
        # An empty named volume mounted over an image directory is filled from it.
        assert run(toolbox, ["true"], volumes={volume.name: {"bind": "/bin"}})[0] == 0
        status, out = run(toolbox, ["stat", "-c", "%h:%i", "/t/busybox", "/t/sh"],
                          volumes={volume.name: {"bind": "/t"}})
        busybox, sh = out.split()
        assert busybox == sh and int(busybox.split(":")[0]) > 100
    finally:
        volume.remove(force=True)


def test_reaper_exit_codes(toolbox: str) -> None:
    assert run(toolbox, [REAPER])[0] == 125
    status, out = run(toolbox, [REAPER, "/no/such/tool"])
    assert status == 127 and "reaper: /no/such/tool: No such file" in out
    assert run(toolbox, [REAPER, "/etc/passwd"])[0] == 126
    assert run(toolbox, [REAPER, "sh", "-c", "kill -KILL $$"])[0] == 128 + 9


def test_reaper_ends_leftovers_in_target(toolbox: str, static_image: str) -> None:
    with running(static_image) as target:
        started = time.monotonic()
        status, out = run(toolbox, [REAPER, "sh", "-c", "sleep 1000 & sleep 1000 & exit 3"],
                          pid_mode=f"container:{target.id}")
        assert status == 3, out
        assert time.monotonic() - started < 15
        assert processes(toolbox, target) == [("1", "0", "S", "/app")]


def test_without_reaper_orphans_become_zombies_in_target(toolbox: str, static_image: str) -> None:
    """The problem the reaper solves: an orphan is adopted by the target's PID 1, never reaped."""
    with running(static_image) as target:
        with running(toolbox, ["sh", "-c", "(sleep 1 &); exec sleep 60"],
                     pid_mode=f"container:{target.id}"):
            zombies = wait_until(lambda: [p for p in processes(toolbox, target) if "Z" in p[2]])
            assert zombies and zombies[0][1] == "1"  # parent: the target's app, which never reaps


def test_reaper_reaps_orphans_while_running(toolbox: str, static_image: str) -> None:
    script = "(sleep 2 &); exec sleep 60"
    with running(static_image) as target:
        with running(toolbox, [REAPER, "sh", "-c", script], pid_mode=f"container:{target.id}"):
            listed = wait_until(lambda: [p for p in processes(toolbox, target) if "sleep 2" in p])
            reaper = [p for p in processes(toolbox, target) if p[3].startswith(REAPER)]
            assert listed and reaper and listed[0][1] == reaper[0][0]  # adopted by the reaper
            time.sleep(2.5)  # the orphan has ended by now
            listed = processes(toolbox, target)
            assert [p[3] for p in listed] == ["/app", f"{REAPER} sh -c {script}", "sleep 60"]
            assert not [p for p in listed if "Z" in p[2]], listed


def test_reaper_forwards_sigterm(toolbox: str, static_image: str) -> None:
    with running(static_image) as target:
        with running(toolbox, [REAPER, "sh", "-c", "sleep 1000 & wait"],
                     pid_mode=f"container:{target.id}") as sidecar:
            time.sleep(0.5)
            started = time.monotonic()
            sidecar.stop(timeout=10)
            assert sidecar.wait(timeout=30)["StatusCode"] == 128 + 15
            assert time.monotonic() - started < 5  # forwarded, not killed after the timeout
        assert processes(toolbox, target) == [("1", "0", "S", "/app")]
