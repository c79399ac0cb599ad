"""Images on the engine: found or pulled (debug images, image targets), imported and tagged
(the offline toolbox builders), read where they are stored (``image``), listed by label.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from distrodebug.errors import ImageUnavailable, NoSuchTarget
from distrodebug.model import ImageInfo
from distrodebug.runtimes.docker.connection import Connection
from distrodebug.runtimes.docker.engine.errors import EngineError, NotFound
from distrodebug.runtimes.docker.translate import explain, translate


class Images(Connection):
    """Images, by reference or by label; a missing debug image is pulled."""

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

    def images_labelled(self, label: str) -> list[tuple[ImageInfo, int]]:
        """Images carrying `label` (a key or key=value), each with its size in bytes."""
        with translate(self.endpoint, "listing images"):
            found = self.api.images(filters={"label": label})
        return [(ImageInfo(ref=",".join(i.get("RepoTags") or []), id=i["Id"],
                           labels=i.get("Labels") or {}), int(i.get("Size") or 0)) for i in found]
