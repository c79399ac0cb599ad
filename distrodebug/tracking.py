"""Sidecars a session has made, known from the moment they exist, not from when start returns.

A Ctrl-C can land between a runtime's `start_sidecar` returning and the session holding what it
returned: one bytecode, and a leaked container. Runtimes call :func:`track` as they construct a
sidecar; the session removes everything tracked during its start, whatever ended it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

_current: ContextVar[list[Any] | None] = ContextVar("distrodebug_tracked", default=None)


def track(sidecar: Any) -> None:
    """Record a sidecar being made, if a session is collecting them."""
    collected = _current.get()
    if collected is not None:
        collected.append(sidecar)


@contextlib.contextmanager
def collecting() -> Iterator[list[Any]]:
    """Collect the sidecars made inside the block."""
    collected: list[Any] = []
    token = _current.set(collected)
    try:
        yield collected
    finally:
        _current.reset(token)


def untrack(sidecar: Any) -> None:
    """Forget a sidecar the session must not remove: a warm sidecar, once it runs, is shared."""
    collected = _current.get()
    if collected is not None and sidecar in collected:
        collected.remove(sidecar)
