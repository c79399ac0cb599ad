"""The JSON body of a container create, built from docker-py's keyword names.

spec.py decides what a sidecar's container is, in those names (``container_kwargs``); these
pure functions only put it in the engine's words, as docker-py's ``create_host_config`` and
``create_container`` did. EngineClient's methods of those names (client.py) call them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def host_config(**options: Any) -> dict[str, Any]:
    """A HostConfig body from docker-py's ``create_host_config`` keyword names (those we use)."""
    names = {
        "log_config": "LogConfig", "cap_add": "CapAdd", "cap_drop": "CapDrop",
        "privileged": "Privileged", "security_opt": "SecurityOpt", "pids_limit": "PidsLimit",
        "mem_limit": "Memory", "pid_mode": "PidMode", "ipc_mode": "IpcMode",
        "volumes_from": "VolumesFrom", "read_only": "ReadonlyRootfs", "auto_remove": "AutoRemove",
    }
    config: dict[str, Any] = {"NetworkMode": options.pop("network_mode", None) or "default"}
    binds = options.pop("binds", None)
    if binds:
        config["Binds"] = [f"{source}:{b['bind']}:{b.get('mode', 'rw')}" for source, b in binds.items()]
    for key, value in options.items():
        if key not in names:
            raise TypeError(f"host_config does not take {key!r}")
        if value is not None:
            config[names[key]] = value
    return config


def container_config(image: str, *, command: list[str] | None = None,
                     entrypoint: list[str] | None = None, environment: Mapping[str, str] | None = None,
                     user: str = "", labels: Mapping[str, str] | None = None, tty: bool = False,
                     detach: bool = False, stdin_open: bool = False,
                     host_config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The body of a container create, as docker-py's ``create_container`` builds it: not detached
    means stdout and stderr are attached, and stdin too (once) when it is open."""
    attach = not detach
    return {
        "Image": image,
        "Cmd": command,
        "Entrypoint": entrypoint,
        "Env": [f"{k}={v}" for k, v in environment.items()] if environment else None,
        "User": user,
        "Labels": dict(labels or {}),
        "Tty": tty,
        "OpenStdin": stdin_open,
        "StdinOnce": attach and stdin_open,
        "AttachStdin": attach and stdin_open,
        "AttachStdout": attach,
        "AttachStderr": attach,
        "HostConfig": dict(host_config or {}),
    }
