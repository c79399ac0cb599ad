"""The Docker engine runtime, on our own engine client (the package engine/; no docker SDK).

Every engine client exception becomes one of our errors in translate.py. The container spec is a
pure function (:func:`container_kwargs`) so it can be checked without an engine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import signal
import tarfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from distrodebug import labels as ours
from distrodebug import privileges as profiles
from distrodebug import settings, tracking
from distrodebug.clock import now_iso, parse_time
from distrodebug.errors import (
    AmbiguousTarget,
    DistrodebugError,
    EngineGone,
    EngineUnreachable,
    ImageUnavailable,
    NoSuchTarget,
    SidecarFailed,
    TargetChanged,
)
from distrodebug.model import (
    DebugOptions,
    DumpMeta,
    ImageInfo,
    Mode,
    OwnedObject,
    Privileges,
    RelaySpec,
    RuntimeState,
    SidecarSpec,
    TargetInfo,
)
from distrodebug.runtimes.docker import state as dockerstate
from distrodebug.runtimes.docker import warm
from distrodebug.runtimes.docker.engine.client import EngineClient
from distrodebug.runtimes.docker.engine.endpoint import Endpoint, endpoint_from_env, parse_host
from distrodebug.runtimes.docker.engine.errors import APIError, EngineError, NotFound
from distrodebug.runtimes.docker.engine.errors import EngineUnreachable as NoAnswer
from distrodebug.runtimes.docker.engine.transport import API_VERSION, Streamed
from distrodebug.runtimes.docker.spec import (
    EngineName,
    container_kwargs,
    engine_from_version,
    info_from_inspect,
    path_of,
    relay_kwargs,
    without_engine_changes,
)
from distrodebug.runtimes.docker.stream import DockerStream
from distrodebug.runtimes.docker.translate import explain, translate
from distrodebug.runtimes.volatile import LOG_TAIL_LINES, NewestBytes, newest_events
from distrodebug.target import Target

__all__ = ["API_VERSION", "DockerRuntime", "DockerStream", "container_kwargs", "info_from_inspect",
           "translate"]

#: Seconds a sidecar still running at the end gets to end its own processes: our reaper
#: ends and reaps them within about one, so none is left to become a zombie in the target.
STOP_GRACE = 5
#: Where a sidecar whose image has no subreaper of its own gets ours (in its own layer).
LENT_REAPER = "/.distrodebug-reaper"
#: The note a session ended by the detach keys leaves (the stream watches for the keys).
DETACHED = "detached (Ctrl-] Ctrl-]): the session ended and its sidecar was removed"


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


_HELD = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold Ctrl-C, SIGTERM and SIGHUP for a moment: while a cleanup runs, so a second one
    cannot cut it short, and while the engine makes an object, so none is made untracked."""
    before = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def _reaper_cache(image_id: str) -> Path:
    """Where the reaper taken from one toolbox image is kept, so later sessions skip the copy."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "distrodebug" / f"reaper-{image_id.removeprefix('sha256:')[:16]}.tar"


def _single_file_tar(archive: bytes, name: str) -> bytes:
    """The first regular file of ``archive`` as a tar of its own, named ``name``, mode 0755."""
    with tarfile.open(fileobj=io.BytesIO(archive)) as source:
        member = next(m for m in source.getmembers() if m.isfile())
        content = source.extractfile(member)
        assert content is not None
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w") as target:
            entry = tarfile.TarInfo(name)
            entry.size, entry.mode, entry.mtime = member.size, 0o755, int(member.mtime)
            target.addfile(entry, content)
    return out.getvalue()


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


class DockerSidecar:
    """A started sidecar container and whatever else was created for it."""

    def __init__(self, runtime: DockerRuntime, container_id: str, name: str) -> None:
        self._runtime = runtime
        self.id = container_id
        self.name = name
        self.stream: DockerStream | None = None
        self.notes: list[str] = []
        tracking.track(self)
        #: Extra objects to remove with the sidecar: ("image", id) or ("volume", name).
        self.extras: list[tuple[str, str]] = []
        #: wait() saw it exit: nothing of it runs any more, so removing it cannot orphan anything.
        self.exited = False

    def resize(self, rows: int, cols: int) -> None:
        with contextlib.suppress(EngineError):
            self._runtime.api.resize(self.id, height=rows, width=cols)

    def wait(self) -> int:
        """The exit status, once the stream has ended.

        With a TTY the stream also ends when the user typed the detach keys (Ctrl-] Ctrl-]):
        the container still runs. That ends the session as well (status 0, said in a note),
        and remove() stops the shell. Without a TTY a command may outlive its output, so the
        wait goes on as long as the engine answers.
        """
        api = self._runtime.api
        tty = self.stream is not None and self.stream.tty
        if self.stream is not None and self.stream.detached:
            self.notes.append(DETACHED)
            return 0
        with translate(self._runtime.endpoint, "waiting for the sidecar"):
            while True:
                try:
                    result = api.wait(self.id, timeout=3 if tty else 60)
                    self.exited = True
                    return int(result.get("StatusCode", 125))
                except NoAnswer:
                    try:
                        running = bool(api.inspect_container(self.id)["State"]["Running"])
                    except NoAnswer:
                        raise EngineGone(
                            f"The Docker engine at {self._runtime.endpoint} stopped answering.",
                            "When it is back, run 'distrodebug cleanup' to remove what this "
                            "session left.",
                        ) from None
                if tty and running:
                    self.notes.append(DETACHED)
                    return 0

    def remove(self) -> None:
        """Stop it with a grace period, then remove it and what was made for it.

        A forced removal kills the sidecar's first process (the reaper) together with the rest,
        and whatever outlives it for an instant is reparented to the target's PID 1, which never
        reaps it. Stopped first, the reaper ends and reaps the session's processes itself.
        """
        if self.stream is not None:
            self.stream.close()
        if self.id and not self.exited:
            self._runtime.stop_container(self.id)
        # Containers before the snapshot image and the tools volume they use.
        extras = sorted(self.extras, key=lambda item: item[0] != "container")
        self._runtime.remove_objects([("container", self.id), *extras])


class WarmExec:
    """One command run by `docker exec` in a warm sidecar (warm.py); the sidecar stays."""

    def __init__(self, runtime: DockerRuntime, container_id: str, token: str) -> None:
        self._runtime = runtime
        self.id = container_id
        self.name = f"warm sidecar {container_id[:12]}"
        self.exec_id = ""
        self.token = token
        self.stream: DockerStream | None = None
        self.notes: list[str] = []
        self.exited = False
        #: The warm sidecar ended under the command (its target stopped): see watch().
        self.sidecar_died = False
        self._watcher: Any = None
        tracking.track(self)

    def watch(self) -> None:
        """End the stream if the warm sidecar dies while the command runs.

        When the target stops, the kernel kills everything in its PID namespace, the command
        and the warm sidecar too, but the engine (Docker 20.10) keeps the exec's stream open
        and the exec "running": `docker exec` itself hangs there. A wait on the sidecar, on a
        connection of its own, notices and ends our stream.
        """
        self._watcher = self._runtime.new_api()
        watcher = self._watcher

        def run() -> None:
            while not self.exited:
                try:
                    watcher.wait(self.id, timeout=30)
                    break
                except NoAnswer as exc:
                    if not exc.timeout:
                        return  # the engine went away: the session's own calls say so
                except EngineError:
                    return
            if not self.exited and self.stream is not None:
                self.sidecar_died = True
                self.stream.abort()

        threading.Thread(target=run, name="distrodebug-warm-watch", daemon=True).start()

    def resize(self, rows: int, cols: int) -> None:
        """No TTY, nothing to resize."""

    def wait(self) -> int:
        """The command's exit status; the engine marks the exec done a moment after its output."""
        api = self._runtime.api
        with translate(self._runtime.endpoint, "waiting for the command"):
            for delay in (0, *([0.01] * 20), *([0.1] * 600)):
                time.sleep(delay)
                if self.sidecar_died:
                    return 128 + signal.SIGKILL  # what the kernel did to the command
                found = api.exec_inspect(self.exec_id)
                if not found.get("Running"):
                    self.exited = True
                    code = found.get("ExitCode")
                    return int(code) if code is not None else 125
        return 125

    def remove(self) -> None:
        """End the command if it still runs (an interrupt): closing its stream does not."""
        if self.stream is not None:
            self.stream.close()
        if self._watcher is not None:
            with contextlib.suppress(Exception):
                self._watcher.close()
        if self.exited or self.sidecar_died or not self.exec_id:
            return
        api = self._runtime.api
        try:
            self._end(api)
        except APIError:
            pass  # the sidecar is gone, and its commands with it
        except NoAnswer:
            raise EngineGone(
                f"The Docker engine at {self._runtime.endpoint} stopped answering, so the command "
                f"this session ran in the warm sidecar {self.id[:12]} may still run.",
                "When the engine answers again, run 'distrodebug cleanup --all' to remove it.",
            ) from None

    def _end(self, api: Any) -> None:
        if not api.exec_inspect(self.exec_id).get("Running"):
            return
        killer = api.exec_create(self.id, ["/bin/sh", "-c", warm.KILL_SCRIPT],
                                 environment={"DD_KILL": self.token}, stdout=False, stderr=False)
        api.exec_start_detached(killer["Id"])
        deadline = time.monotonic() + STOP_GRACE + 2
        while time.monotonic() < deadline and api.exec_inspect(self.exec_id).get("Running"):
            time.sleep(0.05)


class DockerRelay:
    """A port relay container; every connection is one exec of its connect command."""

    def __init__(self, runtime: DockerRuntime, spec: RelaySpec) -> None:
        self._runtime = runtime
        self._spec = spec
        self.id = ""
        #: Held open for the relay's life: its idle command ends when this closes (we died).
        self.keepalive: Any = None
        # One exec set-up at a time (the client would open a connection per concurrent call); the
        # calls are short, the streams that follow run in parallel.
        self._lock = threading.Lock()

    def connect(self, port: int) -> DockerStream:
        api = self._runtime.api
        with self._lock, translate(self._runtime.endpoint, f"connecting to port {port}"):
            created = api.exec_create(self.id, [*self._spec.connect_argv, str(port)], stdin=True,
                                      stdout=True, stderr=True, tty=False)
            sock = api.exec_start(created["Id"])
        return DockerStream(sock, False)

    def remove(self) -> None:
        if self.keepalive is not None:
            with contextlib.suppress(OSError):
                self.keepalive.close()
        self._runtime.remove_objects([("container", self.id)])


class DockerRuntime:
    """The Docker engine the docker CLI would talk to; implements Runtime and Inventory."""

    kind = "docker"

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

    # -- targets -------------------------------------------------------------------------------
    def inspect(self, target: Target) -> TargetInfo:
        if target.kind == "image":
            return self._inspect_image_target(target.name)
        with translate(self.endpoint, f"container '{target.name}'"):
            try:
                data = self.api.inspect_container(target.name)
            except NotFound:
                # Podman answers an ID prefix that matches several containers with 404 (Docker
                # says "multiple IDs found"): tell the two apart ourselves.
                if all(c in "0123456789abcdef" for c in target.name) and len(
                        [c for c in self.api.containers(all=True) if c["Id"].startswith(target.name)]) > 1:
                    raise self._ambiguous(target.name) from None
                raise self._not_found(target.name) from None
            except APIError as exc:
                if "multiple ids" in explain(exc).lower():
                    raise self._ambiguous(target.name) from None
                raise
        return info_from_inspect(data)

    def _not_found(self, name: str) -> DistrodebugError:
        return NoSuchTarget(
            f"No container named or with ID '{name}' exists on the Docker engine at {self.endpoint}.",
            "Run 'docker ps -a' to see the containers there; to explore an image instead, use "
            f"'distrodebug shell --image-target {name}'.",
        )

    def _ambiguous(self, prefix: str) -> DistrodebugError:
        matches = [
            f"{c['Id'][:12]} ({c['Names'][0].lstrip('/')})"
            for c in self.api.containers(all=True)
            if c["Id"].startswith(prefix)
        ]
        return AmbiguousTarget(
            f"The ID prefix '{prefix}' matches {len(matches)} containers: {', '.join(matches)}.",
            "Type more of the ID, or use the container's name.",
        )

    def _inspect_image_target(self, ref: str) -> TargetInfo:
        image = self.ensure_image(ref, lambda _: None, purpose="target image")
        with translate(self.endpoint, f"image '{ref}'"):
            data = self.api.inspect_image(image.id)
        config = data.get("Config") or {}
        return TargetInfo(
            id=data["Id"],
            name=ref,
            image=ref,
            image_id=data["Id"],
            status="image",
            user=config.get("User") or "",
            workdir=config.get("WorkingDir") or "/",
            path=path_of(config.get("Env")),
            entrypoint=tuple(config.get("Entrypoint") or ()),
            cmd=tuple(config.get("Cmd") or ()),
            labels=config.get("Labels") or {},
            repo_digests=tuple(data.get("RepoDigests") or ()),
            raw=data,
        )

    def privileges(self, info: TargetInfo, options: DebugOptions) -> tuple[Mode, Privileges]:
        mode = profiles.choose_mode(info)
        if mode == "join":
            return mode, profiles.choose_docker(info, user=options.user, cap_add=options.cap_add,
                                                privileged=options.privileged)
        return mode, profiles.choose_copy(user=options.user, cap_add=options.cap_add)

    def where(self, mode: Mode, info: TargetInfo, privileges: Privileges) -> str:
        if mode == "snapshot":
            text = ("this is a throwaway copy of its last filesystem (volumes read-only, no "
                    "network); changes are discarded on exit")
        elif mode == "image":
            text = "a throwaway container of the image (no network); changes are discarded on exit"
        elif privileges.view == "chroot":
            text = "you are in the target's root; sidecar tools on PATH, their files at $DISTRODEBUG_TOOLS"
        else:
            text = f"the target's root is at /proc/{info.pid}/root ($DISTRODEBUG_ROOT)"
        return f"{text} · {self._engine_words()}"

    def _engine_words(self) -> str:
        """'on Podman 4.3.1' for the banner, so a user with both engines knows which one answered."""
        try:
            return f"on {self.server_version()}"
        except DistrodebugError:
            return f"on {self.endpoint}"

    def announce(self, info: TargetInfo, message: str) -> str:
        """Docker keeps no history a client may add to: nothing to leave, nothing to say."""
        return ""

    def gone_hint(self, info: TargetInfo) -> str:
        return (f"Run 'docker ps -a --filter id={info.id[:12]}' to see what happened to it; "
                "'distrodebug shell' on a stopped container opens a copy of its last filesystem.")

    def audit_identity(self, info: TargetInfo) -> dict[str, str]:
        return {"container_id": info.id}

    def memory_attempts(self, options: DebugOptions, owner: tuple[int, int] | None) -> list[DebugOptions]:
        """As the processes' own uid:gid with no capability when they share one (a process that
        made itself non-dumpable refuses that); then root keeping SYS_PTRACE and DAC_READ_SEARCH
        (privileges.for_job)."""
        if owner is None:
            return [options]
        return [dataclasses.replace(options, user=f"{owner[0]}:{owner[1]}"), options]

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

    def target_state(self, info: TargetInfo) -> str:
        try:
            return str(self.api.inspect_container(info.id)["State"]["Status"])
        except NotFound:
            return "removed"
        except EngineError:
            return "unknown"

    # -- images --------------------------------------------------------------------------------
    def ensure_image(
        self, ref: str, notice: Callable[[str], None], purpose: str = "debug image"
    ) -> ImageInfo:
        with translate(self.endpoint, f"{purpose} '{ref}'"):
            try:
                data = self.api.inspect_image(ref)
            except NotFound:
                notice(f"distrodebug: pulling {purpose} {ref} ...")
                data = self._pull(ref, purpose)
        labels = (data.get("Config") or {}).get("Labels") or {}
        return ImageInfo(ref=ref, id=data["Id"], labels=labels)

    def _pull(self, ref: str, purpose: str) -> dict[str, Any]:
        repo, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "latest")
        try:
            for _ in self.api.pull(repo, tag=tag or None):
                pass
            return dict(self.api.inspect_image(ref))
        except EngineError as exc:
            hint = (
                "Build the default toolbox offline with 'distrodebug toolbox build', or load one "
                "with 'docker load -i busybox.tar', or choose another with --image or "
                "DISTRODEBUG_IMAGE."
                if purpose == "debug image"
                else "Check the name with 'docker images', or load the image with 'docker load'."
            )
            raise ImageUnavailable(
                f"The {purpose} '{ref}' is not on the engine at {self.endpoint} and cannot be "
                f"pulled: {explain(exc)}.",
                hint,
            ) from None

    def import_image(self, tar_path: str | os.PathLike[str], ref: str, changes: list[str]) -> str:
        """Import a root filesystem tar as an image (the offline builders use this)."""
        with translate(self.endpoint, f"importing {ref}"):
            # Podman 4.3 ignores the `tag` parameter of an import and tags `latest`; both engines
            # take the tag inside `repo`, so it goes there.
            self.api.import_image_from_file(str(tar_path), repository=ref, changes=changes)
            return str(self.api.inspect_image(ref)["Id"])

    def local_image(self, ref: str) -> dict[str, Any]:
        """``docker image inspect`` of an image already on the engine; never pulls."""
        with translate(self.endpoint, f"image '{ref}'"):
            try:
                return dict(self.api.inspect_image(ref))
            except NotFound:
                raise NoSuchTarget(
                    f"The image '{ref}' is not on the engine at {self.endpoint}.",
                    "'distrodebug image' reads images that are already local and never pulls: "
                    "build it or 'docker pull' it first; 'docker images' lists what is there.",
                ) from None

    def layer_store(self) -> tuple[str, str] | None:
        """The engine's data root and storage driver when it listens on a unix socket here (where
        ``image`` may read unpacked layers; image.store checks every file it reads against the
        image's digests, so a socket forwarded from another machine cannot mislead it); Podman's
        store has another layout, so None for it."""
        if self.api.endpoint.scheme != "unix" or self.podman():
            return None
        with translate(self.endpoint, "reading the engine's storage"):
            info = self.api.info()
        root, driver = info.get("DockerRootDir"), info.get("Driver")
        return (str(root), str(driver)) if root and driver else None

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

    def image_labels(self, ref: str) -> dict[str, str] | None:
        try:
            return dict((self.api.inspect_image(ref).get("Config") or {}).get("Labels") or {})
        except NotFound:
            return None

    def tag_image(self, image: str, ref: str) -> None:
        """Point `ref` at `image` too (toolboxes are built under a content tag)."""
        repo, _, tag = ref.rpartition(":")
        with translate(self.endpoint, f"tagging {ref}"):
            self.api.tag(image, repo, tag, force=True)

    def start_relay(self, spec: RelaySpec, info: TargetInfo) -> DockerRelay:
        """A port relay in the target's network namespace (``forward``)."""
        relay = DockerRelay(self, spec)
        name = f"distrodebug-forward-{spec.labels[ours.SESSION]}"
        try:
            with translate(self.endpoint, "starting the port relay"):
                kwargs = relay_kwargs(spec, name)
                kwargs["host_config"] = self.api.create_host_config(**kwargs["host_config"])
                relay.id = self.api.create_container(**kwargs)["Id"]
                relay.keepalive = self.api.attach_socket(relay.id, params={"stdin": 1, "stream": 1})
                self.api.start(relay.id)
        except BaseException:
            relay.remove()
            raise
        return relay

    def images_labelled(self, label: str) -> list[tuple[ImageInfo, int]]:
        """Images carrying `label` (a key or key=value), each with its size in bytes."""
        with translate(self.endpoint, "listing images"):
            found = self.api.images(filters={"label": label})
        return [(ImageInfo(ref=",".join(i.get("RepoTags") or []), id=i["Id"],
                           labels=i.get("Labels") or {}), int(i.get("Size") or 0)) for i in found]

    # -- sidecars ------------------------------------------------------------------------------
    def podman(self) -> bool:
        """Is Podman answering? From a header the engine already sent, else from /version."""
        server = self.api.server
        return server.startswith("Libpod") if server else self.engine()[0] == "Podman"

    def start_sidecar(self, spec: SidecarSpec, info: TargetInfo) -> DockerSidecar | WarmExec:
        # No warm sidecars on Podman: it refuses to remove a container while another joins its
        # namespaces ("dependent containers"), so one idling beside the target would make
        # `podman rm -f TARGET` fail for its idle minute. There each command has its own sidecar.
        if warm.eligible(spec) and not self.podman():
            started = self._start_warm(spec, info)
            if started is not None:
                return started
        return self._start_cold(spec, info)

    def _start_warm(self, spec: SidecarSpec, info: TargetInfo) -> WarmExec | None:
        """The command as an exec in a warm sidecar made like this one, started if need be.

        None when the engine will not (an old or partial API): the caller starts a sidecar of
        its own, whose errors are the ones the user should see.
        """
        name = f"distrodebug-{spec.labels[ours.SESSION]}"
        wanted = warm.idle_kwargs(container_kwargs(spec, name), spec, None)
        api = self.api
        with translate(self.endpoint, "starting the sidecar"):
            for attempt in range(2):
                found = api.containers(filters=warm.label_filter(wanted))
                if found:
                    container = found[0]["Id"]
                    lent = LENT_REAPER if (found[0].get("Labels") or {}).get(warm.LENT) else None
                else:
                    made = self._make_warm(spec, info, name)
                    if made is None:
                        return None
                    container, lent = made
                argv, token = warm.exec_argv(spec, lent)
                started = WarmExec(self, container, token)
                try:
                    created = api.exec_create(container, list(argv), stdin=spec.stdin, stdout=True,
                                              stderr=True, tty=False)
                    started.exec_id = created["Id"]
                    sock = api.exec_start(started.exec_id)
                except APIError as exc:
                    # It reached its idle limit, or its target stopped, since we looked: once more.
                    if attempt or exc.status_code not in (404, 409):
                        raise
                    tracking.untrack(started)
                    continue
                started.stream = DockerStream(getattr(sock, "_sock", sock), False)
                started.watch()
                return started
        return None

    def _make_warm(self, spec: SidecarSpec, info: TargetInfo, name: str) -> tuple[str, str | None] | None:
        """Create and start a warm sidecar; its ID and the reaper lent to it, if one was."""
        holder = DockerSidecar(self, "", name)
        held: Any = None
        try:
            lent = None if spec.argv[0].endswith("reaper") else self._lend_reaper(spec, holder)
            kwargs = warm.idle_kwargs(container_kwargs(spec, name), spec,
                                      LENT_REAPER if lent is not None else None)
            kwargs["host_config"] = self.api.create_host_config(**kwargs["host_config"])
            holder.id = name
            held = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
            try:
                holder.id = self.api.create_container(**kwargs)["Id"]
            except APIError:
                holder.id = ""
                return None  # the cold path says what is wrong, with its Podman fallbacks
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
            held = None
            if lent is not None:
                self.api.put_archive(holder.id, "/", lent)
                self._require_shell(holder.id, dataclasses.replace(spec, argv=(LENT_REAPER, *spec.argv)))
            try:
                self.api.start(holder.id)
            except APIError as exc:
                raise self._start_failed(exc, info) from None
        except BaseException:
            with _signals_held():
                holder.remove()
            raise
        finally:
            if held is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, held)
        tracking.untrack(holder)
        return holder.id, LENT_REAPER if lent is not None else None

    def _start_cold(self, spec: SidecarSpec, info: TargetInfo) -> DockerSidecar:
        name = f"distrodebug-{spec.labels[ours.SESSION]}"
        sidecar = DockerSidecar(self, "", name)
        held: Any = None  # the signal mask to restore once the sidecar's ID is known
        try:
            with translate(self.endpoint, "starting the sidecar"):
                base = None
                if spec.mode != "join":
                    base = self._prepare_copy(spec, info, sidecar)
                lent = None
                if spec.mode == "join" and not spec.argv[0].endswith("reaper"):
                    lent = self._lend_reaper(spec, sidecar)
                    if lent is not None:
                        spec = dataclasses.replace(spec, argv=(LENT_REAPER, *spec.argv))
                # The engine finishes a create whose client went away, after any removal we
                # could send: signals wait until the answer, with the ID, is in hand.
                sidecar.id = name
                held = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
                kwargs = container_kwargs(spec, name, base)
                host = kwargs["host_config"]
                kwargs["host_config"] = self.api.create_host_config(**host)
                try:
                    created = self.api.create_container(**kwargs)
                except APIError as exc:
                    # Podman reports IpcMode "shareable" for a target created with a private IPC
                    # namespace, then refuses to join it ("non-shareable IPC"): go without IPC.
                    if "ipc_mode" not in host or "non-shareable ipc" not in explain(exc).lower():
                        raise
                    host.pop("ipc_mode")
                    kwargs["host_config"] = self.api.create_host_config(**host)
                    created = self.api.create_container(**kwargs)
                sidecar.id = created["Id"]
                signal.pthread_sigmask(signal.SIG_SETMASK, held)
                held = None
                if lent is not None:
                    self.api.put_archive(sidecar.id, "/", lent)
                    self._require_shell(sidecar.id, spec)
                sock = self.api.attach_socket(
                    sidecar.id,
                    params={"stdin": int(spec.stdin), "stdout": 1, "stderr": 1, "stream": 1,
                            "detachKeys": settings.DETACH_KEYS},
                )
                sidecar.stream = DockerStream(sock, spec.tty, settings.DETACH_BYTES)
                try:
                    self.api.start(sidecar.id)
                except APIError as exc:
                    raise self._start_failed(exc, info) from None
        except BaseException:
            with _signals_held():
                sidecar.remove()
            raise
        finally:
            if held is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, held)
        return sidecar

    def _lend_reaper(self, spec: SidecarSpec, sidecar: DockerSidecar) -> bytes | None:
        """Our subreaper, from the default toolbox on this engine, as a tar holding LENT_REAPER.

        A debug image without one would leave every orphan of the session to the target's PID 1
        (a background job that outlives its shell, or anything an interrupt leaves for an
        instant): zombies there for the target's life. Without the default toolbox on the engine
        the sidecar runs as it is and a note says what that risks.
        """
        try:
            data = self.api.inspect_image(settings.DEFAULT_IMAGE)
            path = ((data.get("Config") or {}).get("Labels") or {}).get(ours.REAPER)
            if not path:
                raise NotFound(404, "no reaper label")
            cached = _reaper_cache(str(data["Id"]))
            with contextlib.suppress(OSError):
                return cached.read_bytes()
            labels = {**spec.labels, ours.ROLE: "reaper", **spec.annotations}
            holder = f"{sidecar.name}-reaper"
            sidecar.extras.append(("container", holder))
            with _signals_held():
                self.api.create_container(data["Id"], name=holder, entrypoint=["/"], command=[],
                                          labels=labels)
            try:
                stream, _ = self.api.get_archive(holder, path)
                with stream:
                    taken = stream.read()
            finally:
                self.remove_objects([("container", holder)])
        except APIError:
            sidecar.notes.append(
                f"the debug image has no subreaper ({ours.REAPER}) and the default toolbox "
                f"{settings.DEFAULT_IMAGE} is not on the engine to lend one: processes the "
                "session leaves may stay as zombies in the target until it restarts")
            return None
        lent = _single_file_tar(taken, LENT_REAPER.lstrip("/"))
        with contextlib.suppress(OSError):
            cached.parent.mkdir(parents=True, exist_ok=True)
            partial = cached.with_name(f".{cached.name}.{os.getpid()}")
            partial.write_bytes(lent)
            partial.replace(cached)
        return lent

    def _require_shell(self, container_id: str, spec: SidecarSpec) -> None:
        """The lent reaper starts in any image: say plainly when the image has no shell for it
        to run, as the engine does for an image without one as its first process."""
        shell = spec.argv[1]
        try:
            self.api.archive_stat(container_id, shell)
        except NotFound:
            raise SidecarFailed(
                f"The debug sidecar did not start: the debug image {spec.image} has no {shell}.",
                "Check that the debug image has /bin/sh (see --image), and the engine's log.",
            ) from None

    def _start_failed(self, exc: APIError, info: TargetInfo) -> DistrodebugError:
        text = explain(exc)
        if "is restarting" in text or "is not running" in text or "is paused" in text:
            return TargetChanged(
                f"Could not join '{info.name}': {text}.",
                "Run the command again: distrodebug then works on a snapshot of the stopped target.",
            )
        return SidecarFailed(
            f"The debug sidecar did not start: {text}.",
            "Check that the debug image has /bin/sh (see --image), and the engine's log.",
        )

    def _prepare_copy(self, spec: SidecarSpec, info: TargetInfo, sidecar: DockerSidecar) -> str:
        """Snapshot the stopped target (or use the image) and fill a tools volume."""
        labels = {**spec.labels, **spec.annotations}
        # Every object is named and tracked before it is asked for, so an interrupt at any
        # moment (while the engine's answer is read too) leaves nothing untracked.
        volume = f"{sidecar.name}-tools"
        sidecar.extras.append(("volume", volume))
        with _signals_held():
            self.api.create_volume(name=volume, labels=labels)
        # An empty named volume mounted over an image directory is filled from it at start.
        filler = f"{sidecar.name}-filler"
        sidecar.extras.append(("container", filler))
        with _signals_held():
            self.api.create_container(
                spec.image, name=filler, entrypoint=["/bin/true"], command=[], labels=labels,
                host_config=self.api.create_host_config(
                    binds={volume: {"bind": "/bin", "mode": "rw"}}, network_mode="none"),
            )
        self.api.start(filler)
        self.api.wait(filler, timeout=60)
        self.remove_objects([("container", filler)])
        if spec.mode == "image":
            return info.image_id
        repo = f"distrodebug-snapshot-{spec.labels[ours.SESSION]}"
        sidecar.extras.append(("image", f"{repo}:latest"))
        # The engine finishes a commit whose client went away, after we looked for the image:
        # an interrupt waits for the answer (seconds at most), then removes what it made.
        with _signals_held():
            image = self.api.commit(info.id, repository=repo, tag="latest",
                                    conf={"Labels": labels}, pause=False)
        sidecar.extras.append(("image", image["Id"]))
        return str(image["Id"])

    def stop_container(self, ident: str) -> None:
        """Stop a container with STOP_GRACE seconds to end on its own; a gone one is fine."""
        try:
            self.api.stop(ident, timeout=STOP_GRACE)
        except NotFound:
            pass
        except APIError as exc:
            if "no such" not in explain(exc).lower():  # a removal already under way says this
                raise EngineGone(f"Could not stop the container {ident[:19]}: {explain(exc)}.",
                                 "Run 'distrodebug cleanup' to remove it.") from None
        except NoAnswer:
            raise EngineGone(
                f"The Docker engine at {self.endpoint} stopped answering, so the container "
                f"{ident[:19]} this command made could not be removed.",
                "When the engine answers again, run 'distrodebug cleanup' to remove it.",
            ) from None

    def warm_sidecars_of(self, target_name: str) -> list[str]:
        """The warm sidecars idling beside a target (to remove before the target itself: Podman
        refuses to remove a container whose namespaces others join, "dependent containers")."""
        with translate(self.endpoint, f"listing the warm sidecars of '{target_name}'"):
            found = self.api.containers(all=True, filters={"label": [
                f"{ours.ROLE}={warm.ROLE}", f"{ours.TARGET}={ours.label_value(target_name)}"]})
        return [str(c["Id"]) for c in found]

    def remove_objects(self, objects: list[tuple[str, str]]) -> None:
        """Remove containers, images and volumes; missing ones are fine.

        A running container is stopped first, with a grace period: killed outright, a sidecar's
        reaper could not end the processes under it, which would then be left to the target's
        PID 1 as zombies (cleanup of a warm sidecar that is idling, or still in use).
        """
        for kind, ident in objects:
            if ident and kind == "container":
                with contextlib.suppress(DistrodebugError):
                    self.stop_container(ident)
            if ident:
                self._remove_one(kind, ident)

    def _remove_one(self, kind: str, ident: str) -> None:
        # An interrupted request may still be removing the object, or a container that uses it:
        # the engine then says "in progress" or "in use" for a moment. Wait that out, briefly.
        deadline = time.monotonic() + 10
        while True:
            try:
                if kind == "container":
                    self.api.remove_container(ident, force=True, v=True)
                elif kind == "image":  # (a commit's ID is in Docker's form: engine.commit)
                    self.api.remove_image(ident, force=True, noprune=False)
                elif kind == "volume":
                    self.api.remove_volume(ident, force=True)
                return
            except NotFound:
                return
            except APIError as exc:
                text = explain(exc)
                if "no such" in text.lower():
                    return
                if time.monotonic() < deadline and ("in progress" in text or "in use" in text):
                    time.sleep(0.2)
                    continue
                raise EngineGone(f"Could not remove the {kind} {ident[:19]}: {text}.",
                                 "Run 'distrodebug cleanup' to try again.") from None
            except NoAnswer:
                raise EngineGone(
                    f"The Docker engine at {self.endpoint} stopped answering, so the {kind} "
                    f"{ident[:19]} this command made could not be removed.",
                    "When the engine answers again, run 'distrodebug cleanup' to remove it.",
                ) from None

    # -- our leftovers -------------------------------------------------------------------------
    def list_ours(self) -> list[OwnedObject]:
        """Every container, image and volume carrying our tool label."""
        tool = ours.selector()
        found: list[OwnedObject] = []
        with translate(self.endpoint, "listing our containers"):
            for c in self.api.containers(all=True, filters={"label": tool}):
                found.append(OwnedObject("container", c["Id"], c["Names"][0].lstrip("/"), c["State"],
                                         c.get("Labels") or {}))
            for i in self.api.images(filters={"label": tool}):
                found.append(OwnedObject("image", i["Id"], (i.get("RepoTags") or ["-"])[0], "",
                                         i.get("Labels") or {}))
            for v in (self.api.volumes(filters={"label": tool}) or {}).get("Volumes") or []:
                found.append(OwnedObject("volume", v["Name"], v["Name"], "", v.get("Labels") or {}))
        return found

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
