"""The Docker engine runtime, on our own engine client (the package engine/; no docker SDK).

DockerRuntime is one object: the session, ``cp``, ``dump``, ``cleanup``, ``doctor``, ``image``
and the toolbox builders each reach it through a protocol of their own, and its parts call one
another (an image target is pulled like a debug image, an image's archive container is removed
like a sidecar). It is composed of one mixin per idea, each in a module of its own:

- connection.py: where the engine is, and what it is (Docker or Podman, version, rootless)
- translate.py: engine client exceptions as our errors, each with the next step to take
- targets.py: the container or image a user named, and what a session decides about it
- images.py: images found or pulled, imported, tagged, listed
- sidecars.py: starting the debug sidecar (warm or its own, joined or a copy) and the relay
- handles.py: the sidecar, warm exec and relay a session holds once they run
- archives.py: tar streams from and into containers and images (cp, dump, image)
- dumps.py: a dump's identity, changes, state, events and logs
- inventory.py: what we made, listed and removed

What is sent stays a pure function of its inputs (spec.py), so it is checked without an engine.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from distrodebug.runtimes.docker.archives import Archives
from distrodebug.runtimes.docker.connection import Connection
from distrodebug.runtimes.docker.dumps import Dumps
from distrodebug.runtimes.docker.images import Images
from distrodebug.runtimes.docker.inventory import OwnedObjects
from distrodebug.runtimes.docker.sidecars import Sidecars
from distrodebug.runtimes.docker.targets import Targets
from distrodebug.runtimes.docker.translate import translate

__all__ = ["DockerRuntime"]


# Mixins rather than parts the class delegates to: the protocols want one object, the parts call
# each other on self, and the methods kept their bodies when the class was split. Each mixin
# subclasses the ones it calls, so mypy checks those calls.
class DockerRuntime(Targets, Images, Dumps, Sidecars, Archives, OwnedObjects, Connection):
    """The Docker engine the docker CLI would talk to; implements Runtime, Inventory and PortForwarding."""

    kind = "docker"

    # Only the demo starts a container of its own and waits for it: two calls, no module's worth.
    def run_container(self, image: str, *, name: str, labels: Mapping[str, str],
                      user: str | None = None, read_only: bool = False) -> str:
        """Start a detached container (the demo app) and return its ID."""
        with translate(self.endpoint, f"starting {name}"):
            created = self.api.create_container(
                image, name=name, labels=dict(labels), user=user or "",
                host_config=self.api.create_host_config(read_only=read_only),
            )
            self.api.start(created["Id"])
            return str(created["Id"])

    def wait_listening(self, container_id: str, seconds: float) -> bool:
        """True once the container has a process; the demo uses it before showing sockets."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            state = self.api.inspect_container(container_id)["State"]
            if state.get("Running") and state.get("Pid"):
                return True
            time.sleep(0.05)
        return False
