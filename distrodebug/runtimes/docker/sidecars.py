"""Starting what runs beside a target: the debug sidecar and ``forward``'s port relay.

A command without a TTY in join mode runs in a warm sidecar when one fits (warm.py); anything
else gets a sidecar of its own, joined to a running target's namespaces or, for a stopped target
or an image, a throwaway copy (a snapshot and a tools volume). A debug image without a subreaper
borrows ours from the default toolbox. Signals wait while the engine makes an object, so an
interrupt never leaves one whose ID we do not have.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import signal
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from distrodebug import labels as ours
from distrodebug import settings, tracking
from distrodebug.errors import DistrodebugError, SidecarFailed, TargetChanged
from distrodebug.model import RelaySpec, SidecarSpec, TargetInfo
from distrodebug.runtimes.docker import warm
from distrodebug.runtimes.docker.engine.errors import APIError, NotFound
from distrodebug.runtimes.docker.handles import DockerRelay, DockerSidecar, WarmExec
from distrodebug.runtimes.docker.inventory import OwnedObjects
from distrodebug.runtimes.docker.spec import container_kwargs, relay_kwargs
from distrodebug.runtimes.docker.stream import DockerStream
from distrodebug.runtimes.docker.translate import explain, translate

#: Where a sidecar whose image has no subreaper of its own gets ours (in its own layer).
LENT_REAPER = "/.distrodebug-reaper"


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


class Sidecars(OwnedObjects):
    """Starts sidecars and relays; what was made for one is removed with its handle."""

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
