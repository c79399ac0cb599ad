"""The Docker engine runtime, on our own engine client (the package engine/; no docker SDK).

Every engine client exception becomes one of our errors in translate.py. What the engine is and
where: connection.py. The target a user named: targets.py; images: images.py. Starting sidecars
and the relay: sidecars.py; the handles a session holds: handles.py. What we made, listed and
removed: inventory.py. The container spec is a pure function (:func:`container_kwargs`) so it
can be checked without an engine.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO

from distrodebug import labels as ours
from distrodebug.clock import now_iso, parse_time
from distrodebug.errors import (
    DistrodebugError,
    EngineGone,
    NoSuchTarget,
)
from distrodebug.model import (
    DumpMeta,
    RuntimeState,
    TargetInfo,
)
from distrodebug.runtimes.docker import state as dockerstate
from distrodebug.runtimes.docker.connection import Connection
from distrodebug.runtimes.docker.engine.errors import APIError, EngineError, NotFound
from distrodebug.runtimes.docker.engine.errors import EngineUnreachable as NoAnswer
from distrodebug.runtimes.docker.engine.transport import API_VERSION, Streamed
from distrodebug.runtimes.docker.images import Images
from distrodebug.runtimes.docker.inventory import OwnedObjects
from distrodebug.runtimes.docker.sidecars import Sidecars
from distrodebug.runtimes.docker.spec import (
    container_kwargs,
    info_from_inspect,
    without_engine_changes,
)
from distrodebug.runtimes.docker.stream import DockerStream
from distrodebug.runtimes.docker.targets import Targets
from distrodebug.runtimes.docker.translate import explain, translate
from distrodebug.runtimes.volatile import LOG_TAIL_LINES, NewestBytes, newest_events

__all__ = ["API_VERSION", "DockerRuntime", "DockerStream", "container_kwargs", "info_from_inspect",
           "translate"]


class _EngineReader(io.RawIOBase):
    """A streamed response body as a file; transport errors become EngineGone.

    The http.client response beneath decodes the chunked body straight into our buffer.
    """

    def __init__(self, stream: Streamed, endpoint: str, what: str) -> None:
        self._stream = stream
        self._endpoint = endpoint
        self._what = what

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            return self._stream.readinto(buffer)
        except NoAnswer as exc:
            raise EngineGone(f"The engine at {self._endpoint} stopped sending {self._what}: {exc}.",
                             "Run the command again once the engine answers.") from None

    def close(self) -> None:
        self._stream.close()
        super().close()


class DockerRuntime(Targets, Images, Sidecars, OwnedObjects, Connection):
    """The Docker engine the docker CLI would talk to; implements Runtime and Inventory."""

    kind = "docker"

    def dump_meta(self, info: TargetInfo) -> DumpMeta:
        """docker inspect, the declared environment and the changes against the image."""
        raw = info.raw
        members: dict[str, Any] = {"inspect.json": dict(raw)}
        changes: dict[str, str] | None = None
        if info.status != "image":
            kinds = {"A": "added", "C": "changed", "D": "deleted"}
            changes = {}
            for line in self.changes(info.id):
                kind, _, path = line.partition(" ")
                changes[path.lstrip("/")] = kinds.get(kind, "changed")
        members["environment.json"] = list((raw.get("Config") or {}).get("Env") or [])
        identity = {
            "runtime": "docker",
            "container_id": None if info.status == "image" else info.id,
            "container_name": None if info.status == "image" else info.name,
            "status": info.status, "image": info.image, "image_id": info.image_id,
            "repo_digests": list(info.repo_digests), "entrypoint": list(info.entrypoint),
            "cmd": list(info.cmd), "user": info.user, "labels": dict(info.labels),
            "created": raw.get("Created"),
        }
        identity.update(self._image_identity(info))
        return DumpMeta(identity=identity, members=members, changes=changes)

    def _image_identity(self, info: TargetInfo) -> dict[str, Any]:
        """The image's registry digests (a container's inspect names only the image ID) and the
        digest that identifies it: the first repo digest, else the content-addressed image ID."""
        digests = list(info.repo_digests)
        if not digests and info.image_id:
            with contextlib.suppress(DistrodebugError), translate(self.endpoint, "reading the image"):
                digests = list(self.api.inspect_image(info.image_id).get("RepoDigests") or [])
        first = digests[0].rpartition("@")[2] if digests else ""
        return {"repo_digests": digests, "image_digest": first or info.image_id or None}

    def volatile_state(self, info: TargetInfo) -> RuntimeState:
        """State times and health from inspect, the engine's events since the container was
        created, and its logs with timestamps (the newest part)."""
        captured = now_iso()
        if info.status == "image":
            return RuntimeState(captured, {}, logs=None, notes=("a plain image has no runtime state",))
        state = dockerstate.container_state(info.raw)
        notes: list[str] = []
        events = dockerstate.merge_events(dockerstate.state_events(state),
                                          self._engine_events(info, notes))
        logs = NewestBytes()
        with translate(self.endpoint, "reading the container's logs"):
            try:
                logs.feed_all(self.api.logs_stream(info.id, timestamps=True, tail=LOG_TAIL_LINES))
            except APIError as exc:  # log driver "none" and friends keep nothing
                notes.append(f"logs: the engine keeps none to read ({explain(exc)})")
        if (note := logs.note("logs")) is not None:
            notes.append(note)
        notes.append(f"logs: at most the newest {LOG_TAIL_LINES} lines were asked for; Docker keeps "
                     "one log for all the container's runs")
        return RuntimeState(captured, state, newest_events(events, notes), logs.text(),
                            notes=tuple(notes))

    def _engine_events(self, info: TargetInfo, notes: list[str]) -> list[dict[str, Any]]:
        """``docker events`` about the container since it was created: starts, kills, execs, OOM.
        The engine keeps recent events in memory only (since it started, a bounded number)."""
        created = parse_time(info.raw.get("Created"))
        since = int(created.timestamp()) if created else int(time.time()) - 86400
        podman = self.podman()
        found: list[dict[str, Any]] = []
        # Podman writes a container's 'died' event from its cleanup process, a moment after the
        # exit the state already shows (seconds on a busy machine): one more look for it.
        for attempt in range(2 if podman and info.status == "exited" else 1):
            if attempt:
                time.sleep(1.5)
            found = []
            try:
                # Up to now to the nanosecond: a whole second would drop this second's events (a
                # container that exited just before the dump). Podman 4.3 reads a fractional
                # 'until' as nothing at all: the next whole second there (it waits for it).
                until = str(int(time.time()) + 1) if podman else f"{time.time():.9f}"
                stream = self.api.events(since=since, until=until, filters={"container": [info.id]})
                for raw in stream:
                    event = dockerstate.engine_event(raw)
                    if event is not None:
                        found.append(event)
            except (EngineError, ValueError) as exc:  # ValueError: an event that is not JSON
                notes.append(f"engine events could not be read: {explain(exc)}")
                break
            if any(event["reason"] == "die" for event in found):
                break
        notes.append("engine events: Docker keeps only the most recent ones, in memory: on a busy "
                     "engine, or after it restarted, older ones are gone")
        return found

    @contextlib.contextmanager
    def save_image(self, image_id: str) -> Iterator[BinaryIO]:
        """The image as ``docker save`` writes it, streamed as it comes; the engine stops producing
        it as soon as the block ends (the connection is closed, read to the end or not)."""
        with translate(self.endpoint, f"saving image {image_id[:19]}"):
            stream = self.api.export_image(image_id)
        reader = io.BufferedReader(_EngineReader(stream, self.endpoint, "the image"),
                                   buffer_size=1 << 20)
        try:
            yield reader
        finally:
            reader.close()

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

    def changes(self, container_id: str) -> list[str]:
        """'docker diff' as lines like 'A /tmp/x'; the engine answers None for no change."""
        kinds = {0: "C", 1: "A", 2: "D"}
        with translate(self.endpoint, "reading the container's changes"):
            found = self.api.diff(container_id) or []
            lines = [f"{kinds.get(item['Kind'], '?')} {item['Path']}" for item in found]
            if not lines:
                return lines
            # Podman's diff includes the mount points it made itself at start (see
            # spec.PODMAN_START_CHANGES); they are not changes anyone made to the container.
            read_only = bool(self.api.inspect_container(container_id)["HostConfig"].get("ReadonlyRootfs"))
            return without_engine_changes(lines, self.engine()[0], read_only)

    @contextlib.contextmanager
    def read_archive(self, info: TargetInfo, path: str) -> Iterator[BinaryIO]:
        """``path`` of a stopped container or an image as a tar stream (the engine's archive API).

        Volumes and bind mounts are included. For a plain image, a container is created (never
        started) to read it from, and removed afterwards.
        """
        created = None
        with translate(self.endpoint, f"reading '{path}' from '{info.name}'"):
            if info.status == "image":
                labels = {**ours.session_labels(session_id=ours.new_session_id(), target=info.name,
                                                role="archive"),
                          **ours.session_annotations(target=info.name)}
                created = self.api.create_container(info.image_id, labels=labels,
                                                    entrypoint=["/"], command=[])["Id"]
            try:
                try:
                    stream, _ = self.api.get_archive(created or info.id, path)
                except NotFound:
                    raise NoSuchTarget(f"'{path}' does not exist in {info.name}.", "") from None
                reader = io.BufferedReader(_EngineReader(stream, self.endpoint, f"'{path}'"),
                                           buffer_size=1 << 20)
                try:
                    yield reader
                finally:
                    reader.close()
            finally:
                if created:
                    self.remove_objects([("container", created)])

    def write_archive(self, info: TargetInfo, into: str, source: BinaryIO) -> None:
        """Unpack a tar stream into a directory of a stopped container (the archive API)."""
        with translate(self.endpoint, f"writing into '{into}' of '{info.name}'"):
            try:
                self.api.put_archive(info.id, into, source)
            except NotFound:
                raise NoSuchTarget(f"The directory '{into}' does not exist in {info.name}.",
                                   "Create it first, or copy into an existing directory.") from None

    def is_dir(self, info: TargetInfo, path: str) -> bool:
        """True when ``path`` is a directory in a (stopped) container."""
        try:
            stat = self.api.archive_stat(info.id, path)
        except NotFound:
            return False
        return bool(int(stat.get("mode", 0)) & (1 << 31))  # Go's os.ModeDir

    def wait_listening(self, container_id: str, seconds: float) -> bool:
        """True once the container has a process; the demo uses it before showing sockets."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            state = self.api.inspect_container(container_id)["State"]
            if state.get("Running") and state.get("Pid"):
                return True
            time.sleep(0.05)
        return False
