"""Container names for shell completion: one raw API call, no SDK import, silent on any error.

Completion runs on every Tab press, so it must answer in milliseconds: the docker SDK alone takes
longer to import than this takes to ask the engine. Only local unix-socket engines are asked
(DOCKER_HOST or the current docker context).
"""

from __future__ import annotations

import contextlib

from distrodebug.runtimes.docker.engine.client import EngineClient
from distrodebug.runtimes.docker.engine.endpoint import endpoint_from_env

_TIMEOUT = 0.5


def container_names(running_only: bool = False) -> list[str]:
    """Names of the engine's containers; [] when there is no local engine or it does not answer."""
    names: list[str] = []
    with contextlib.suppress(Exception):  # completion must never print a traceback
        endpoint = endpoint_from_env()  # DOCKER_HOST or the docker context, as every command
        if endpoint.scheme != "unix":
            return []
        client = EngineClient(endpoint, timeout=_TIMEOUT)
        try:
            for item in client.containers(all=not running_only):
                names.extend(name.lstrip("/") for name in item.get("Names") or [])
        finally:
            client.close()
    return sorted(names)
