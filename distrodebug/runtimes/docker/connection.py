"""The engine a DockerRuntime talks to: where it is and what it is.

Where: the address the docker CLI would use (DOCKER_HOST, the docker context, the default
socket), with ssh:// refused early. What: Docker or Podman, its version, rootless or not. The
other parts of the runtime build on :class:`Connection` for its client (``api``) and for the
address their messages name (``endpoint``).
"""

from __future__ import annotations

import os

from distrodebug.errors import EngineUnreachable
from distrodebug.runtimes.docker.engine.client import EngineClient
from distrodebug.runtimes.docker.engine.endpoint import Endpoint, endpoint_from_env, parse_host
from distrodebug.runtimes.docker.engine.transport import API_VERSION
from distrodebug.runtimes.docker.spec import EngineName, engine_from_version
from distrodebug.runtimes.docker.translate import translate


def _endpoint(url: str | None) -> Endpoint:
    """The engine to talk to: ``url`` if given, else DOCKER_HOST, the docker context, the default.

    ssh:// engines are refused with the way round: forwarding the remote socket costs one ssh
    command and keeps every command fast (a client speaking ssh would bring back the import cost
    this client exists to save).
    """
    try:
        found = parse_host(url) if url else endpoint_from_env()
    except ValueError as exc:
        raise EngineUnreachable(
            f"The Docker engine address {url or os.environ.get('DOCKER_HOST', '')!r} cannot be "
            f"used: {exc}.",
            "Set DOCKER_HOST to unix:///path/to/docker.sock or tcp://host:port, or pick a context "
            "with 'docker context use'.",
        ) from None
    if found.scheme == "ssh":
        raise EngineUnreachable(
            f"distrodebug does not speak ssh to reach the Docker engine at {found.url}.",
            f"Forward the remote socket and point DOCKER_HOST at it: 'ssh -nNT -L "
            f"/tmp/docker-remote.sock:/var/run/docker.sock {found.host or 'HOST'} &' then "
            "'DOCKER_HOST=unix:///tmp/docker-remote.sock distrodebug ...'.",
        )
    return found


class Connection:
    """One engine's client, and the facts about that engine the other parts ask for."""

    def __init__(self, endpoint: str | None = None) -> None:
        found = _endpoint(endpoint)
        self.endpoint = found.url
        self._engine: EngineName | None = None
        # Nothing is sent yet: the first request connects (and says if nothing answers).
        self._found = found
        self.api = self.new_api()

    def new_api(self) -> EngineClient:
        """A client of the same engine with connections of its own (a watcher's, in a thread)."""
        return EngineClient(self._found, version=API_VERSION)

    def engine(self) -> EngineName:
        """Which engine answers on the socket: ("Docker", "20.10.24") or ("Podman", "4.3.1")."""
        if self._engine is None:
            with translate(self.endpoint, "reading the engine version"):
                self._engine = engine_from_version(self.api.version(api_version=False))
        return self._engine

    def server_version(self) -> str:
        """'Docker 20.10.24' or 'Podman 4.3.1'."""
        return " ".join(self.engine())

    def rootless(self) -> str | None:
        """None for a rootful engine; for a rootless one, its cgroup version ('1', '2', '?').

        Docker says rootless in SecurityOptions; Podman's compat info does not (only
        seccomp there), it has a field of its own. On cgroup v1 a rootless engine manages no
        cgroups: limits on a container are accepted and not enforced.
        """
        with translate(self.endpoint, "reading the engine's security options"):
            info = self.api.info()
        options = info.get("SecurityOptions") or []
        if info.get("Rootless") is True or any("name=rootless" in str(o) for o in options):
            return str(info.get("CgroupVersion") or "?")
        return None

    def podman(self) -> bool:
        """Is Podman answering? From a header the engine already sent, else from /version."""
        server = self.api.server
        return server.startswith("Libpod") if server else self.engine()[0] == "Podman"
