"""The target: the container or image a user named, found on the engine, and what a session
decides and says about it (how to reach it and with what privilege, the banner, the hint when it
is gone, the IDs an audit entry records).
"""

from __future__ import annotations

import dataclasses

from distrodebug import privileges as profiles
from distrodebug.errors import AmbiguousTarget, DistrodebugError, NoSuchTarget
from distrodebug.model import DebugOptions, Mode, Privileges, TargetInfo
from distrodebug.runtimes.docker.engine.errors import APIError, EngineError, NotFound
from distrodebug.runtimes.docker.images import Images
from distrodebug.runtimes.docker.spec import info_from_inspect, path_of
from distrodebug.runtimes.docker.translate import explain, translate
from distrodebug.target import Target


class Targets(Images):
    """Finding a target (an image target is pulled like a debug image) and the session's view of it."""

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

    def target_state(self, info: TargetInfo) -> str:
        try:
            return str(self.api.inspect_container(info.id)["State"]["Status"])
        except NotFound:
            return "removed"
        except EngineError:
            return "unknown"
