"""What a dump records of a container besides its files: who it is (inspect, image digests),
what changed against its image, and the volatile part read first (state, the engine's events,
the newest logs), for the bundle's timeline.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from distrodebug.clock import now_iso, parse_time
from distrodebug.errors import DistrodebugError
from distrodebug.model import DumpMeta, RuntimeState, TargetInfo
from distrodebug.runtimes.docker import state as dockerstate
from distrodebug.runtimes.docker.connection import Connection
from distrodebug.runtimes.docker.engine.errors import APIError, EngineError
from distrodebug.runtimes.docker.spec import without_engine_changes
from distrodebug.runtimes.docker.translate import explain, translate
from distrodebug.runtimes.volatile import LOG_TAIL_LINES, NewestBytes, newest_events


class Dumps(Connection):
    """A container's identity, changes, state, events and logs for a dump bundle."""

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
