"""Fixtures the engine tests of `distrodebug image` share."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.fixtures.layered import Layer, load, saved_archive


@pytest.fixture
def loaded(engine: Any) -> Iterator[Callable[..., str]]:
    """Load an image made of these layers (offline, `docker load` / `podman load` through the
    API); every one is removed after the test."""
    refs: list[str] = []

    def make(layers: list[Layer], user: str | None = "65532") -> str:
        ref = f"distrodebug-test/layered:{uuid.uuid4().hex[:8]}"
        archive, _ = saved_archive(layers, ref=ref, user=user)
        load(engine, archive)
        refs.append(ref)
        return ref

    yield make
    for ref in refs:
        try:
            engine.images.remove(ref, force=True)
        except Exception:
            pass
