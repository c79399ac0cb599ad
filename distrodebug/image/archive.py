"""Read an image as ``docker save`` streams it: layers, config and manifest, in one forward pass.

Formats: Docker's legacy layout (``<v1 id>/layer.tar``, ``<id>.json``, ``manifest.json``), Podman's
docker-archive (``<diff id>.tar``) and the OCI layout newer engines write (``blobs/sha256/...``,
layers possibly gzip or zstd compressed). Members are told apart by their first bytes, not their
names: a tar (or compressed) member is scanned as a layer while it streams by, a small JSON member
is kept for the end, everything else is skipped. Nothing is written anywhere; memory holds one
read buffer per tar level, the JSON documents, and the scans.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, cast

from distrodebug.bundle.tar.header import parse_block
from distrodebug.bundle.tar.reader import CHUNK, TarFormatError, TarReader
from distrodebug.image.layers import Budget, LayerScan, scan_layer

#: A JSON member larger than this is not an image config or manifest; all of them together are
#: kept up to MAX_JSON_TOTAL (a hostile archive could hold any number).
MAX_JSON = 8 << 20
MAX_JSON_TOTAL = 64 << 20
_GZIP = b"\x1f\x8b"
_ZSTD = b"\x28\xb5\x2f\xfd"
_ZERO = bytes(512)


class ImageFormatError(Exception):
    """The stream is not an image archive we can read."""


class _MemberStream(io.RawIOBase):
    """The content of the outer archive's current member (a layer) as a readable file."""

    def __init__(self, pieces: Iterator[memoryview | bytes]) -> None:
        self._pieces = pieces
        self._view = memoryview(b"")
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        """Skip what the layer's reader left (the padding after its end blocks)."""
        for _ in self._pieces:
            pass

    def readinto(self, buffer: Any) -> int:
        while not len(self._view):
            piece = next(self._pieces, None)
            if piece is None:
                return 0
            self._view = memoryview(piece)
        size = min(len(buffer), len(self._view))
        buffer[:size] = self._view[:size]
        self._view = self._view[size:]
        self.read_bytes += size
        return size


@dataclass
class Saved:
    """What one pass over a saved image found."""

    layers: dict[str, LayerScan] = field(default_factory=dict)
    documents: dict[str, Any] = field(default_factory=dict)

    def manifest(self, image_id: str) -> dict[str, Any]:
        """The manifest.json entry for ``image_id`` (or the only one)."""
        entries = self.documents.get("manifest.json")
        if not isinstance(entries, list) or not entries:
            raise ImageFormatError("the saved image has no manifest.json")
        hexid = image_id.split(":")[-1]
        for entry in entries:
            if isinstance(entry, dict) and hexid and hexid in str(entry.get("Config", "")):
                return entry
        first = entries[0]
        if not isinstance(first, dict):
            raise ImageFormatError("the saved image's manifest.json is not a list of objects")
        return first

    def ordered(self, image_id: str) -> tuple[list[LayerScan], dict[str, Any]]:
        """The layers lowest first, and the image config."""
        entry = self.manifest(image_id)
        names = [str(name) for name in entry.get("Layers") or []]
        config = self.documents.get(str(entry.get("Config", "")))
        if not isinstance(config, dict):
            raise ImageFormatError("the saved image's config is missing or not an object")
        scans = [self.layers.get(name) or LayerScan(name, error="not in the archive") for name in names]
        return scans, config


def _is_tar(head: bytes) -> bool:
    if len(head) < 512:
        return False
    return head[257:262] == b"ustar" or head[:512] == _ZERO or parse_block(head[:512]) is not None


def _layer_reader(first: bytes, pieces: Iterator[memoryview | bytes]) -> tuple[BinaryIO, _MemberStream]:
    raw = _MemberStream(_chain(first, pieces))
    source = cast(BinaryIO, raw)
    if first.startswith(_GZIP):
        return cast(BinaryIO, gzip.GzipFile(fileobj=io.BufferedReader(raw, CHUNK), mode="rb")), raw
    if first.startswith(_ZSTD):
        import zstandard

        return cast(BinaryIO, zstandard.ZstdDecompressor().stream_reader(source, read_size=CHUNK)), raw
    return source, raw


def _chain(first: bytes, rest: Iterator[memoryview | bytes]) -> Iterator[memoryview | bytes]:
    yield first
    yield from rest


def read_saved(stream: BinaryIO, budget: Budget | None = None) -> Saved:
    """One pass over a ``docker save`` stream."""
    budget = budget or Budget()
    saved = Saved()
    outer = TarReader(stream, buffer_size=4 * CHUNK)
    json_left = MAX_JSON_TOTAL
    try:
        for member in outer.members():
            if member.kind != "file" or member.size <= 0:
                continue
            pieces = outer.views(limit=CHUNK, gather=CHUNK)
            head = bytearray()
            for piece in pieces:
                head += piece
                if len(head) >= 512:
                    break
            first = bytes(head)
            if _is_tar(first) or first.startswith((_GZIP, _ZSTD)):
                source, raw = _layer_reader(first, pieces)
                try:
                    scan = scan_layer(member.name, TarReader(source), budget)
                except (TarFormatError, OSError, EOFError, ValueError) as exc:
                    scan = LayerScan(member.name, error=f"unreadable layer: {exc}")
                raw.drain()
                scan.tar_bytes = member.size
                saved.layers[member.name] = scan
            elif first.lstrip()[:1] in (b"{", b"[") and member.size <= min(MAX_JSON, json_left):
                json_left -= member.size
                data = bytearray(first)
                for piece in pieces:
                    data += piece
                try:
                    saved.documents[member.name] = json.loads(bytes(data))
                except ValueError:
                    pass
    except TarFormatError as exc:
        raise ImageFormatError(f"the engine's image archive is damaged: {exc}") from None
    return saved
