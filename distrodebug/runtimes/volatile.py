"""Pure helpers both runtimes use to read a target's volatile state (events, logs) within bounds."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from distrodebug.clock import parse_time

#: Log lines asked for (the newest), and the bytes kept of them at most, per run.
LOG_TAIL_LINES = 20_000
LOG_MAX_BYTES = 4 << 20
#: Events kept at most (the newest).
MAX_EVENTS = 1000


class NewestBytes:
    """Keeps the newest ``limit`` bytes of a stream fed in chunks, cut at a line start."""

    def __init__(self, limit: int = LOG_MAX_BYTES) -> None:
        self.limit = limit
        self.total = 0
        self._data = bytearray()

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self._data += chunk
        if len(self._data) > 2 * self.limit:  # trim now and then, not on every chunk
            del self._data[: len(self._data) - self.limit]

    def feed_all(self, chunks: Iterable[bytes]) -> NewestBytes:
        for chunk in chunks:
            self.feed(chunk)
        return self

    @property
    def cut(self) -> bool:
        return self.total > self.limit

    def text(self) -> str:
        data = bytes(self._data[-self.limit :]) if self.cut else bytes(self._data)
        if self.cut:
            newline = data.find(b"\n")
            data = data[newline + 1 :] if newline >= 0 else data
        return data.decode("utf-8", "replace")

    def note(self, what: str) -> str | None:
        """What to tell the reader when the log was cut, else None."""
        if not self.cut:
            return None
        return (f"{what}: {self.total} bytes read, only the newest {self.limit} bytes (whole lines) "
                "were kept")


def newest_events(events: Sequence[Mapping[str, Any]], notes: list[str]) -> tuple[Mapping[str, Any], ...]:
    """The events in time order (by time, not by string: some have fractions, some none), the
    newest :data:`MAX_EVENTS` of them, with a note when more were left out."""
    never = datetime.min.replace(tzinfo=UTC)
    ordered = sorted(events, key=lambda e: parse_time(e.get("time")) or never)
    if len(ordered) > MAX_EVENTS:
        notes.append(f"events: only the newest {MAX_EVENTS} of {len(ordered)} were kept")
    return tuple(ordered[-MAX_EVENTS:])
