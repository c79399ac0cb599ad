"""Container names for shell completion: one raw API call, no SDK import, silent on any error.

Completion runs on every Tab press, so it must answer in milliseconds: the docker SDK alone takes
longer to import than this takes to ask the engine. Only local unix-socket engines are asked.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket

_TIMEOUT = 0.5


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=_TIMEOUT)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(_TIMEOUT)
        sock.connect(self._path)
        self.sock = sock


def container_names(running_only: bool = False) -> list[str]:
    """Names of the engine's containers; [] when there is no local engine or it does not answer."""
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    if not host.startswith("unix://"):
        return []
    names: list[str] = []
    with contextlib.suppress(Exception):  # completion must never print a traceback
        conn = _UnixConnection(host.removeprefix("unix://"))
        try:
            conn.request("GET", f"/containers/json?all={0 if running_only else 1}")
            reply = conn.getresponse()
            if reply.status == 200:
                for item in json.loads(reply.read()):
                    names.extend(name.lstrip("/") for name in item.get("Names") or [])
        finally:
            conn.close()
    return sorted(names)
