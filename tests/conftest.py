"""Shared fixtures: the real engine, offline-built images, labelled targets, and a CLI runner.

Engine-backed tests skip where no engine answers, and fail instead when
DISTRODEBUG_REQUIRE_ENGINE=1 (CI sets it), so CI can never pass by skipping.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.engine import ENGINE_ENV, ENGINES, lane, require_engine
from tests.fixtures.images import ensure_python_target, ensure_static_target, ensure_toolbox

ROOT = Path(__file__).resolve().parent.parent
TEST_LABEL = "io.distrodebug.test"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--engine", choices=ENGINES, default=None,
                     help="Engine the engine tests run against (default: $DISTRODEBUG_ENGINE or "
                          "docker). 'podman' starts a Podman service serving the Docker API.")


def pytest_configure(config: pytest.Config) -> None:
    chosen = config.getoption("--engine")
    if chosen:
        os.environ[ENGINE_ENV] = chosen


def pytest_report_header(config: pytest.Config) -> str:
    return f"distrodebug engine lane: {lane()}"


@pytest.fixture(autouse=True)
def private_state(tmp_path_factory: pytest.TempPathFactory,
                  monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test's audit log and recordings go to a fresh directory, never the user's own."""
    state = tmp_path_factory.mktemp("state") / "distrodebug"
    monkeypatch.setenv("DISTRODEBUG_STATE_DIR", str(state))
    return state


@pytest.fixture(scope="session")
def engine() -> Any:
    return require_engine()


@pytest.fixture(scope="session")
def toolbox(engine: Any) -> str:
    return ensure_toolbox(engine)


@pytest.fixture(scope="session")
def static_image(engine: Any) -> str:
    return ensure_static_target(engine, nonroot=False)


@pytest.fixture(scope="session")
def static_nonroot_image(engine: Any) -> str:
    return ensure_static_target(engine, nonroot=True)


@pytest.fixture(scope="session")
def python_image(engine: Any) -> str:
    return ensure_python_target(engine)


@pytest.fixture
def make_container(engine: Any) -> Iterator[Callable[..., Any]]:
    """Start a labelled target container; every one is removed after the test."""
    made: list[Any] = []

    def make(image: str, *, start: bool = True, **kwargs: Any) -> Any:
        labels = {TEST_LABEL: "1", **kwargs.pop("labels", {})}
        name = kwargs.pop("name", f"ddtest-{uuid.uuid4().hex[:8]}")
        container = engine.containers.create(image, name=name, labels=labels, **kwargs)
        made.append(container)
        if start:
            container.start()
            container.reload()
        return container

    yield make
    import docker.errors

    for container in made:
        # Podman refuses for a moment what Docker does at once: removing a container whose
        # cleanup is still running, or that a sidecar being removed still joins ("dependent
        # containers"). Without a few more tries its targets piled up on the machine.
        deadline = time.monotonic() + 15
        while True:
            try:
                container.remove(force=True, v=True)
                break
            except docker.errors.NotFound:
                break
            except Exception:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.5)


@dataclass
class Ran:
    code: int
    out: str
    err: str


@pytest.fixture
def dd(toolbox: str) -> Callable[..., Ran]:
    """Run the real `distrodebug` CLI in a subprocess with the offline toolbox as debug image."""

    def run(*args: str, input: str | None = None, env: dict[str, str] | None = None,
            timeout: float = 120, cwd: str | None = None) -> Ran:
        full_env = {**os.environ, "DISTRODEBUG_IMAGE": toolbox, **(env or {})}
        proc = subprocess.run(
            [sys.executable, "-m", "distrodebug", *args],
            input=input,
            capture_output=True,
            text=True,
            env=full_env,
            timeout=timeout,
            stdin=None if input is not None else subprocess.DEVNULL,
            cwd=cwd,
        )
        return Ran(proc.returncode, proc.stdout, proc.stderr)

    return run


def run_to_end(engine: Any, image: str, command: list[str], **create: Any) -> bytes:
    """Run a labelled helper container to its end and return its output.

    Created, waited for and read, not the SDK's ``containers.run``: that follows the logs, and
    Podman's followed logs of a container that ends before they are asked for never close (a
    test then hung until its timeout).
    """
    box = engine.containers.create(image, command, labels={TEST_LABEL: "1"}, **create)
    try:
        box.start()
        box.wait(timeout=60)
        return bytes(box.logs())
    finally:
        box.remove(force=True)


def ours(engine: Any, kind: str = "containers", warm: bool = False) -> list[Any]:
    """Objects carrying distrodebug's tool label (sidecars, snapshots, volumes).

    Warm sidecars (runtimes/docker/warm.py) outlive the command that started them by design and
    the engine removes them by itself: they are left out unless ``warm`` asks for them.
    """
    import docker.errors

    filters = {"label": "io.distrodebug.tool=distrodebug"}

    def get(collection: Any, ident: str) -> Any:
        # The SDK inspects each listed object: one another session removes in between is
        # skipped (other test runs share this engine). Docker says 404; Podman says 500 "no such
        # container" for a container removed between its listing and its inspect.
        try:
            return collection.get(ident)
        except docker.errors.NotFound:
            return None
        except docker.errors.APIError as exc:
            if "no such" in str(exc).lower():
                return None
            raise

    if kind == "containers":
        found = [get(engine.containers, c["Id"]) for c in engine.api.containers(all=True, filters=filters)]
        return [c for c in found
                if c is not None and (warm or c.labels.get("io.distrodebug.role") != "warm")]
    if kind == "images":
        images = [get(engine.images, item["Id"]) for item in engine.api.images(filters=filters)]
        return [image for image in images if image is not None]
    return list(engine.volumes.list(filters=filters))


@pytest.fixture
def no_leftovers(engine: Any) -> Iterator[None]:
    """Assert that the test left no sidecar, snapshot image or tools volume behind.

    Only objects whose owning distrodebug process has exited count: other sessions running at
    the same time on the same engine (another test run, a benchmark) are not this test's leaks.
    """
    from distrodebug import cleanup as leftovers
    from distrodebug.model import OwnedObject

    def dead() -> dict[str, str]:
        found = []
        for kind in ("containers", "images", "volumes"):
            for obj in ours(engine, kind):
                labels = (obj.attrs.get("Config") or {}).get("Labels") if kind == "images" else None
                labels = labels or getattr(obj, "labels", None) or obj.attrs.get("Labels") or {}
                found.append(OwnedObject(kind, obj.id, obj.id, "", labels))
        # Said with its role, target and owner, so a leak can be told from another run's object.
        return {item.id: f"{item.kind} of {item.target} by {item.owner}"
                for item in leftovers.classify(found) if not item.alive}

    before = dead()
    yield
    left = {ident: what for ident, what in dead().items() if ident not in before}
    if left:
        # Other runs on this engine kill their own sessions on purpose and clean up a moment
        # later; their objects pass through here as dead ones. A leak of ours stays.
        time.sleep(5)
        still = dead()
        left = {ident: what for ident, what in left.items() if ident in still}
    assert not left, f"left behind: {left}"
