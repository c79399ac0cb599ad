"""Fixtures for the Kubernetes tests: the real one-node cluster scripts/cluster.sh runs.

- `cluster`: kubectl and distrodebug pointed at it, with our offline images loaded (session).
- `ns`: a namespace of the test's own, deleted afterwards; `ns_factory(labels)` for more.
Skips where no cluster runs; fails instead when DISTRODEBUG_REQUIRE_CLUSTER=1 (CI).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.fixtures.cluster import Cluster, connect, load, new_namespace


@pytest.fixture(scope="session")
def cluster(engine: Any, toolbox: str, static_image: str, static_nonroot_image: str,
            python_image: str) -> Cluster:
    found = connect()
    load([toolbox, static_image, static_nonroot_image, python_image])
    found.images.update(toolbox=toolbox, static=static_image, nonroot=static_nonroot_image,
                        python=python_image)
    return found


@pytest.fixture
def ns_factory(cluster: Cluster) -> Iterator[Callable[..., str]]:
    made: list[str] = []

    def make(labels: dict[str, str] | None = None) -> str:
        made.append(new_namespace(cluster, labels))
        return made[-1]

    yield make
    for name in made:
        cluster.kubectl("delete", "namespace", name, "--wait=false", "--grace-period=0",
                        check=False)


@pytest.fixture
def ns(ns_factory: Callable[..., str]) -> str:
    return ns_factory()
