"""What we send to and read from the Docker engine, as plain data: pure functions."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from distrodebug.model import RelaySpec, SidecarSpec, TargetInfo

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def container_kwargs(spec: SidecarSpec, name: str, base_image: str | None = None) -> dict[str, Any]:
    """The create_container arguments for a sidecar; pure."""
    host: dict[str, Any] = {
        "log_config": {"Type": "none", "Config": {}},
        "cap_add": list(spec.cap_add) or None,
        "privileged": spec.privileged,
    }
    if spec.cap_drop:
        host["cap_drop"] = list(spec.cap_drop)
    if spec.no_new_privileges:
        host["security_opt"] = ["no-new-privileges"]
    if spec.pids_limit:
        host["pids_limit"] = spec.pids_limit
    if spec.memory_limit:
        host["mem_limit"] = spec.memory_limit
    if spec.mode == "join":
        joined = f"container:{spec.target_id}"
        host.update(pid_mode=joined, network_mode=joined)
        if spec.join_ipc:
            host["ipc_mode"] = joined
    else:
        # A throwaway copy of a stopped target or an image: no network, its volumes read-only.
        host["network_mode"] = "none"
        host["binds"] = {f"{name}-tools": {"bind": spec.tools_mount, "mode": "ro"}}
        if spec.mode == "snapshot":
            host["volumes_from"] = [f"{spec.target_id}:ro"]
    return {
        "image": base_image or spec.image,
        "name": name,
        "entrypoint": list(spec.argv[:1]),
        "command": list(spec.argv[1:]),
        "environment": dict(spec.env),
        "user": spec.user or "",
        "labels": dict(spec.labels),
        "tty": spec.tty,
        # Not detached: Docker then attaches stdout/stderr, and stdin (once) when it is open.
        "detach": False,
        "stdin_open": spec.stdin,
        "host_config": host,
    }


def path_of(env: list[str] | None) -> str:
    for item in env or ():
        if item.startswith("PATH="):
            return item[5:]
    return DEFAULT_PATH


#: A container restarted by the engine and up for less than this is taken to be crash-looping.
CRASH_LOOP_UPTIME = 10.0


def _uptime(started_at: str, now: float) -> float | None:
    from datetime import datetime

    try:
        started = datetime.fromisoformat(started_at[:26].rstrip("Z") + "+00:00")
    except ValueError:
        return None
    return now - started.timestamp()


_PODMAN_STATES = {"stopped": "exited", "configured": "created", "initialized": "created",
                  "stopping": "running"}


def info_from_inspect(data: Mapping[str, Any], now: float | None = None) -> TargetInfo:
    """TargetInfo from 'docker inspect' data; pure but for the clock."""
    config = data.get("Config") or {}
    host = data.get("HostConfig") or {}
    state = data.get("State") or {}
    status = str(state.get("Status") or "unknown")
    # Podman's own words for Docker's states: 'stopped' (exited, between two runs of a restart
    # policy too), 'configured' and 'initialized' (created, never started), 'stopping' (running).
    status = _PODMAN_STATES.get(status, status)
    if state.get("Restarting"):
        status = "restarting"
    elif status == "running" and int(data.get("RestartCount") or 0) > 0:
        # Between two crashes a crash-looping container looks running for a moment; joining it
        # then would end with it. Debug its last filesystem instead.
        up = _uptime(str(state.get("StartedAt") or ""), time.time() if now is None else now)
        if up is not None and up < CRASH_LOOP_UPTIME:
            status = "restarting"
    pid = 1
    if host.get("PidMode") == "host":
        pid = int(state.get("Pid") or 1)
    return TargetInfo(
        id=str(data["Id"]),
        name=str(data.get("Name", "")).lstrip("/") or str(data["Id"])[:12],
        image=str(config.get("Image") or ""),
        image_id=str(data.get("Image") or ""),
        status=status,
        user=str(config.get("User") or ""),
        read_only=bool(host.get("ReadonlyRootfs")),
        ipc_shareable=host.get("IpcMode") == "shareable",
        pid=pid,
        workdir=str(config.get("WorkingDir") or "/"),
        path=path_of(config.get("Env")),
        entrypoint=tuple(config.get("Entrypoint") or ()),
        cmd=tuple(config.get("Cmd") or ()),
        labels=dict(config.get("Labels") or {}),
        raw=data,
    )


def relay_kwargs(spec: RelaySpec, name: str) -> dict[str, Any]:
    """The create_container arguments for a port relay: the target's network and nothing more."""
    host = {
        "log_config": {"Type": "none", "Config": {}},
        "network_mode": f"container:{spec.target_id}",
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "read_only": True,
    }
    return {
        "image": spec.image,
        "name": name,
        "entrypoint": list(spec.idle_argv[:1]),
        "command": list(spec.idle_argv[1:]),
        "user": spec.user,
        "labels": {**spec.labels, **spec.annotations},
        "detach": False,
        "stdin_open": True,
        "host_config": host,
    }


#: What the engine behind a Docker API socket is: "Docker" or "Podman", with its version.
EngineName = tuple[str, str]


def engine_from_version(data: Mapping[str, Any]) -> EngineName:
    """("Podman", "4.3.1") or ("Docker", "20.10.24") from the API's /version answer.

    Podman serves the same API and names itself only in Components ("Podman Engine").
    """
    names = [str(c.get("Name") or "") for c in data.get("Components") or [] if isinstance(c, Mapping)]
    kind = "Podman" if any("podman" in name.lower() for name in names) else "Docker"
    return kind, str(data.get("Version") or "?")


#: Directories Podman itself adds to a container's filesystem when it starts one: mount points
#: for the tmpfs it puts on a read-only root (read_only_tmpfs), and /etc, where it places the
#: mount points of /etc/hosts, /etc/hostname and /etc/resolv.conf ("C /etc" even with nothing
#: else changed). Docker adds none of them to the container's diff.
PODMAN_START_CHANGES = {"C /etc"}
PODMAN_READ_ONLY_CHANGES = {"A /tmp", "A /var", "A /var/tmp", "A /run"}


def without_engine_changes(lines: list[str], engine: str, read_only: bool) -> list[str]:
    """A container's diff lines without what the engine made at start (Podman), so an empty list
    still means "nothing changed the container's files"."""
    if engine != "Podman":
        return lines
    ignored = PODMAN_START_CHANGES | (PODMAN_READ_ONLY_CHANGES if read_only else set())
    return [line for line in lines if line not in ignored]
