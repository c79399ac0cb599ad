"""Tar streams between us and the engine, for targets that cannot be joined, and saved images.

A path of a stopped container or an image read as a tar (``cp``, ``dump``), a tar unpacked into
a stopped container (``cp``), an image as ``docker save`` writes it (``image``). Reads are
streamed as the engine sends them, through :class:`_EngineReader`.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from typing import Any, BinaryIO

from distrodebug import labels as ours
from distrodebug.errors import EngineGone, NoSuchTarget
from distrodebug.model import TargetInfo
from distrodebug.runtimes.docker.engine.errors import EngineUnreachable as NoAnswer
from distrodebug.runtimes.docker.engine.errors import NotFound
from distrodebug.runtimes.docker.engine.transport import Streamed
from distrodebug.runtimes.docker.inventory import OwnedObjects
from distrodebug.runtimes.docker.translate import translate


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


class Archives(OwnedObjects):
    """The engine's archive API, and ``docker save``."""

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
