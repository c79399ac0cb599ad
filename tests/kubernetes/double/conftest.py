"""The small double (server.py) for faults a real cluster cannot produce here."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.kubernetes.double.server import SmallDouble


@pytest.fixture
def double_factory(tmp_path: Any) -> Iterator[Callable[..., tuple[SmallDouble, str]]]:
    started: list[SmallDouble] = []

    def make(**faults: Any) -> tuple[SmallDouble, str]:
        double = SmallDouble(**faults).start()
        started.append(double)
        folder = tmp_path / f"double-{len(started)}"
        folder.mkdir()
        return double, double.kubeconfig(folder)

    yield make
    for double in started:
        double.stop()
