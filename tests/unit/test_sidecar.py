"""The sidecar's privileges, script and container spec are pure functions: check them as data."""

from __future__ import annotations

import dataclasses

import pytest

from distrodebug import labels, sidecar
from distrodebug import privileges as profiles
from distrodebug.model import TargetInfo
from distrodebug.runtimes.docker.spec import container_kwargs, info_from_inspect

LABELS = labels.session_labels(session_id="abcd1234", target="web")


def info(user: str = "", **kw: object) -> TargetInfo:
    return TargetInfo(id="c0ffee", name="web", image="app:1", image_id="sha256:1", status="running",
                      user=user, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("user", "caps", "view"),
    [("", (), "chroot"), ("0", (), "chroot"), ("root:root", (), "chroot"),
     ("65532", ("SYS_PTRACE",), "chroot"), ("nonroot:nonroot", ("SYS_PTRACE",), "chroot")],
)
def test_least_privilege(user: str, caps: tuple[str, ...], view: str) -> None:
    chosen = profiles.choose_docker(info(user))
    assert (chosen.user, chosen.cap_add, chosen.privileged, chosen.view) == ("0", caps, False, view)
    assert chosen.reason


def test_user_flag_avoids_ptrace_and_chroot() -> None:
    chosen = profiles.choose_docker(info("65532"), user="65532")
    assert chosen.cap_add == () and chosen.view == "proc" and chosen.user == "65532"


def test_cap_add_is_normalised_and_deduplicated() -> None:
    chosen = profiles.choose_docker(info("65532"), cap_add=("cap_net_admin", "SYS_PTRACE"))
    assert chosen.cap_add == ("SYS_PTRACE", "NET_ADMIN")
    assert chosen.describe() == "root +SYS_PTRACE +NET_ADMIN"


def test_privileged() -> None:
    chosen = profiles.choose_docker(info(""), privileged=True)
    assert chosen.privileged and chosen.describe() == "privileged"


def test_join_spec_for_nonroot_target() -> None:
    target = info("65532", ipc_shareable=True, workdir="/app")
    priv = profiles.choose_docker(target)
    spec = sidecar.build_spec(info=target, mode="join", image="tools:1", privileges=priv,
                              command=("ps",), tty=False, stdin=False, labels=LABELS,
                              reaper="/usr/local/bin/distrodebug-reaper")
    assert spec.argv == ("/usr/local/bin/distrodebug-reaper", "/bin/sh", "-c",
                         'eval "$DD_SCRIPT"', "distrodebug", "ps")
    assert spec.env["DD_PID"] == "1" and spec.env["DD_WORKDIR"] == "/app"
    assert spec.env["DD_VIEW"] == "chroot"
    kwargs = container_kwargs(spec, "distrodebug-abcd1234")
    assert kwargs == {
        "image": "tools:1",
        "name": "distrodebug-abcd1234",
        "entrypoint": ["/usr/local/bin/distrodebug-reaper"],
        "command": ["/bin/sh", "-c", 'eval "$DD_SCRIPT"', "distrodebug", "ps"],
        "environment": dict(spec.env),
        "user": "0",
        "labels": LABELS,
        "tty": False,
        "detach": False,
        "stdin_open": False,
        "host_config": {
            "log_config": {"Type": "none", "Config": {}},
            "cap_add": ["SYS_PTRACE"],
            "privileged": False,
            "pid_mode": "container:c0ffee",
            "network_mode": "container:c0ffee",
            "ipc_mode": "container:c0ffee",
        },
    }


def test_snapshot_spec_is_isolated() -> None:
    target = dataclasses.replace(info("65532"), status="exited")
    spec = sidecar.build_spec(info=target, mode="snapshot", image="tools:1",
                              privileges=profiles.choose_copy(), command=None, tty=True,
                              stdin=True, labels=LABELS, reaper=None)
    assert spec.argv[0] == "/.distrodebug/sh"
    kwargs = container_kwargs(spec, "distrodebug-abcd1234", base_image="sha256:snap")
    host = kwargs["host_config"]
    assert kwargs["image"] == "sha256:snap"
    assert host["network_mode"] == "none"
    assert host["volumes_from"] == ["c0ffee:ro"]
    assert host["binds"] == {"distrodebug-abcd1234-tools": {"bind": "/.distrodebug", "mode": "ro"}}
    assert host["cap_add"] is None and "pid_mode" not in host


def test_info_from_inspect() -> None:
    data = {
        "Id": "abc", "Name": "/web", "Image": "sha256:img",
        "Config": {"Image": "app:1", "User": "65532", "WorkingDir": "/app",
                   "Env": ["PATH=/venv/bin:/usr/bin", "X=1"], "Entrypoint": ["/py"], "Cmd": ["a"]},
        "HostConfig": {"ReadonlyRootfs": True, "IpcMode": "shareable", "PidMode": ""},
        "State": {"Status": "running", "Running": True, "Restarting": False, "Pid": 4242},
    }
    got = info_from_inspect(data)
    assert (got.name, got.user, got.read_only, got.ipc_shareable, got.pid, got.path) == (
        "web", "65532", True, True, 1, "/venv/bin:/usr/bin")
    data["HostConfig"]["PidMode"] = "host"  # type: ignore[index]
    data["State"]["Restarting"] = True  # type: ignore[index]
    got = info_from_inspect(data)
    assert got.pid == 4242 and got.status == "restarting"


def test_recently_restarted_container_counts_as_crash_looping() -> None:
    data = {
        "Id": "abc", "Name": "/web", "RestartCount": 4, "Config": {}, "HostConfig": {},
        "State": {"Status": "running", "Running": True, "StartedAt": "2026-11-26T10:00:00.5Z"},
    }
    from datetime import UTC, datetime

    started = datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC).timestamp()
    assert info_from_inspect(data, now=started + 3).status == "restarting"
    assert info_from_inspect(data, now=started + 3600).status == "running"
    data["RestartCount"] = 0
    assert info_from_inspect(data, now=started + 3).status == "running"


@pytest.mark.parametrize(("podman", "docker"), [("stopped", "exited"), ("configured", "created"),
                                                ("initialized", "created"), ("stopping", "running")])
def test_podmans_state_words_read_as_dockers(podman: str, docker: str) -> None:
    """A crash-looping container on Podman is 'stopped' between two runs: debugged like an
    exited one, not refused as an unknown state."""
    data = {"Id": "abc", "Name": "/web", "Config": {}, "HostConfig": {}, "State": {"Status": podman}}
    assert info_from_inspect(data).status == docker
