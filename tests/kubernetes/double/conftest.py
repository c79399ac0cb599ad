"""Fixtures for Kubernetes tests: the API-server double, with or without the Docker engine.

- `k8s_api_double`: API only (no engine); pods are scheduled but never run. Fast, no Docker.
- `k8s_double`: a fresh double whose pods run on Docker (engine test); KUBECONFIG is set.
- `k8s_double_factory(**kwargs)`: more doubles with other settings (version, node name...).
- `k8s_busybox_image`: a throwaway busybox image (tag `distrodebug-test/k8s-busybox:1`).
- `docker_engine`: a docker SDK client; skips without an engine unless
  DISTRODEBUG_REQUIRE_ENGINE=1, then fails.
Every double removes its containers and volumes when the test ends, pass or fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from apiserver import ApiServerDouble

BUSYBOX_IMAGE = "distrodebug-test/k8s-busybox:1"
LABEL_DOUBLE = "io.distrodebug.k8s-double"


def _require_engine() -> bool:
    return os.environ.get("DISTRODEBUG_REQUIRE_ENGINE") == "1"


@pytest.fixture(scope="session")
def docker_engine() -> Any:
    try:
        import docker

        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as err:  # noqa: BLE001 - any failure means "no engine here"
        if _require_engine():
            pytest.fail(f"DISTRODEBUG_REQUIRE_ENGINE=1 but Docker is not reachable: {err}")
        pytest.skip(f"Docker engine not reachable: {err}")
    return client


def build_busybox_image(client: Any, tag: str = BUSYBOX_IMAGE) -> str:
    """Import a busybox root filesystem (hard-linked applets, passwd with nonroot 65532)."""
    try:
        client.images.get(tag)
        return tag
    except Exception:  # noqa: BLE001 - docker.errors.ImageNotFound
        pass
    busybox = shutil.which("busybox") or "/bin/busybox"
    if not Path(busybox).exists():
        pytest.skip("no static busybox on this machine to build the test image")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "bin").mkdir()
        shutil.copy2(busybox, root / "bin" / "busybox")
        applets = subprocess.run([busybox, "--list"], capture_output=True, text=True,
                                 check=True).stdout.split()
        for applet in applets:
            if applet != "busybox":
                os.link(root / "bin" / "busybox", root / "bin" / applet)
        for folder in ("etc", "tmp", "root", "home/nonroot"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        (root / "tmp").chmod(0o1777)
        (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                         "nonroot:x:65532:65532::/home/nonroot:/bin/sh\n")
        (root / "etc/group").write_text("root:x:0:\nnonroot:x:65532:\n")
        tar = subprocess.run(["tar", "-C", str(root), "-c", "."], capture_output=True, check=True)
        client.api.import_image_from_data(tar.stdout, repository=tag.split(":")[0],
                                          tag=tag.split(":")[1])
    return tag


@pytest.fixture(scope="session")
def k8s_busybox_image(docker_engine: Any) -> str:
    return build_busybox_image(docker_engine)


def _sweep(client: Any, double_id: str) -> None:
    """Remove whatever a double left behind (normally nothing: it cleans up on stop)."""
    flt = {"label": f"{LABEL_DOUBLE}={double_id}"}
    for container in client.containers.list(all=True, filters=flt):
        container.remove(force=True)
    for volume in client.volumes.list(filters=flt):
        volume.remove(force=True)


@pytest.fixture
def k8s_double_factory(request: pytest.FixtureRequest) -> Iterator[Callable[..., ApiServerDouble]]:
    started: list[ApiServerDouble] = []

    def make(**kwargs: Any) -> ApiServerDouble:
        if kwargs.get("engine", True):
            client = request.getfixturevalue("docker_engine")
            kwargs.setdefault("infra_image", build_busybox_image(client))
        double = ApiServerDouble(**kwargs).start()
        started.append(double)
        return double

    yield make
    problems = []
    for double in started:
        double.stop()
        if double.engine:
            _sweep(request.getfixturevalue("docker_engine"), double.id)
        problems += double.errors
    assert not problems, f"the API-server double hit internal errors: {problems}"


@pytest.fixture
def k8s_api_double(k8s_double_factory: Callable[..., ApiServerDouble],
                   monkeypatch: pytest.MonkeyPatch) -> ApiServerDouble:
    double = k8s_double_factory(engine=False)
    monkeypatch.setenv("KUBECONFIG", double.kubeconfig)
    return double


@pytest.fixture
def k8s_double(k8s_double_factory: Callable[..., ApiServerDouble],
               monkeypatch: pytest.MonkeyPatch) -> ApiServerDouble:
    double = k8s_double_factory()
    monkeypatch.setenv("KUBECONFIG", double.kubeconfig)
    return double
