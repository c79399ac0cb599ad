"""What a session holds once a sidecar or relay runs: waiting for it, resizing, removing it.

DockerSidecar is a container of the session's own; WarmExec is one command in a warm sidecar,
which stays (warm.py); DockerRelay is ``forward``'s relay. They need of the runtime only its
client and removal, so they take an :class:`OwnedObjects`.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from typing import Any

from distrodebug import tracking
from distrodebug.errors import EngineGone
from distrodebug.model import RelaySpec
from distrodebug.runtimes.docker import warm
from distrodebug.runtimes.docker.engine.errors import APIError, EngineError
from distrodebug.runtimes.docker.engine.errors import EngineUnreachable as NoAnswer
from distrodebug.runtimes.docker.inventory import STOP_GRACE, OwnedObjects
from distrodebug.runtimes.docker.stream import DockerStream
from distrodebug.runtimes.docker.translate import translate

#: The note a session ended by the detach keys leaves (the stream watches for the keys).
DETACHED = "detached (Ctrl-] Ctrl-]): the session ended and its sidecar was removed"


class DockerSidecar:
    """A started sidecar container and whatever else was created for it."""

    def __init__(self, runtime: OwnedObjects, container_id: str, name: str) -> None:
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

    def __init__(self, runtime: OwnedObjects, container_id: str, token: str) -> None:
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

    def __init__(self, runtime: OwnedObjects, spec: RelaySpec) -> None:
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
