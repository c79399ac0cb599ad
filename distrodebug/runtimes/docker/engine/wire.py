"""What the engine client encodes and decodes on the way, as pure functions: query strings and
path segments going out; multiplexed frames, progress streams and the archive API's path-stat
header coming back.

Kept apart from the transport because none of it needs a connection: the unit tests check it
without an engine, progress streams and frames arriving in awkward pieces included.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import quote, urlencode

from distrodebug.runtimes.docker.engine.errors import APIError, EngineUnreachable


def query(params: Mapping[str, Any] | None) -> str:
    """``?a=1&b=x`` from params as docker-py sends them: None dropped, booleans as 1/0, lists
    repeated, dicts (filters) as JSON whose values are lists."""
    if not params:
        return ""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            pairs.append((key, "1" if value else "0"))
        elif isinstance(value, list | tuple):
            pairs.extend((key, str(item)) for item in value)
        elif isinstance(value, dict):
            pairs.append((key, json.dumps({k: v if isinstance(v, list) else [v]
                                           for k, v in value.items()})))
        else:
            pairs.append((key, str(value)))
    return f"?{urlencode(pairs)}" if pairs else ""


def quote_part(name: str) -> str:
    """A name or image reference as a path segment (a reference keeps its / and :)."""
    return quote(name, safe="/:@")


def json_objects(source: io.BufferedReader) -> Iterator[Any]:
    """The JSON objects of a progress stream (pull, import), however they are split in chunks."""
    decoder = json.JSONDecoder()
    pending = ""
    while True:
        data = source.read1(1 << 16)  # what has come, not 64 KiB: progress arrives in drops
        if not data:
            break
        pending += data.decode("utf-8", "replace")
        while True:
            pending = pending.lstrip()
            if not pending:
                break
            try:
                value, end = decoder.raw_decode(pending)
            except ValueError:
                break  # the rest of this object is still on its way
            pending = pending[end:]
            yield value
    if pending.strip():
        raise EngineUnreachable(f"the engine's progress stream ended mid-object: {pending[:80]!r}")


def raise_progress_error(item: Any) -> None:
    if isinstance(item, dict) and item.get("error"):
        detail = item.get("errorDetail") or {}
        raise APIError(int(detail.get("code") or 500) if isinstance(detail, dict) else 500,
                       str(item["error"]))


def decode_path_stat(header: str | None) -> dict[str, Any]:
    """The X-Docker-Container-Path-Stat header of the archive API: base64 of a JSON object."""
    if not header:
        return {}
    try:
        value = json.loads(base64.b64decode(header))
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def demultiplexed(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The payloads of a multiplexed stream (8-byte headers: stream, 0, 0, 0, big-endian size),
    in pieces as they come; a header or a payload may span any number of chunks."""
    header = bytearray()
    left = 0
    for chunk in chunks:
        view = memoryview(chunk)
        while len(view):
            if left:
                take = min(left, len(view))
                yield bytes(view[:take])
                view, left = view[take:], left - take
                continue
            need = 8 - len(header)
            header += view[:need]
            view = view[need:]
            if len(header) == 8:
                left = int.from_bytes(header[4:8], "big")
                header.clear()


def demultiplex(data: bytes) -> bytes:
    """The payloads of a whole multiplexed answer."""
    return b"".join(demultiplexed([data]))
