"""What distrodebug made on the engine: listed (``sessions``, ``cleanup``) and removed.

Every path that makes something removes it through here: a session's sidecar and what was made
for it, the holder of a lent reaper, an image's archive container, ``cleanup``. A running
container is stopped before it is removed, so the reaper in a sidecar can end what runs under it.
"""

from __future__ import annotations

import contextlib
import time

from distrodebug import labels as ours
from distrodebug.errors import DistrodebugError, EngineGone
from distrodebug.model import OwnedObject
from distrodebug.runtimes.docker import warm
from distrodebug.runtimes.docker.connection import Connection
from distrodebug.runtimes.docker.engine.errors import APIError, NotFound
from distrodebug.runtimes.docker.engine.errors import EngineUnreachable as NoAnswer
from distrodebug.runtimes.docker.translate import explain, translate

#: Seconds a sidecar still running at the end gets to end its own processes: our reaper
#: ends and reaps them within about one, so none is left to become a zombie in the target.
STOP_GRACE = 5


class OwnedObjects(Connection):
    """Our containers, images and volumes (the Inventory protocol), and stopping a container."""

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
