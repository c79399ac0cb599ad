"""`sessions`, `cleanup` and `demo` against the real engine."""

from __future__ import annotations

import json
from typing import Any

import pytest

from distrodebug import labels as ours_labels
from tests.conftest import ours

pytestmark = [pytest.mark.engine]


def leftover(engine: Any, toolbox: str, pid: str) -> Any:
    labels = {ours_labels.TOOL_KEY: ours_labels.TOOL, ours_labels.SESSION: "dead0001",
              ours_labels.TARGET: "web", ours_labels.CREATED: "20260101T000000Z",
              ours_labels.OWNER_HOST: ours_labels.this_host(), ours_labels.OWNER_PID: pid,
              "io.distrodebug.test": "1"}
    return engine.containers.create(toolbox, ["true"], labels=labels)


def test_sessions_and_cleanup(dd: Any, engine: Any, toolbox: str) -> None:
    dead = leftover(engine, toolbox, "999999999")
    alive = leftover(engine, toolbox, "1")  # pid 1 always runs: a live session
    try:
        listed = json.loads(dd("sessions", "--output", "json").out)
        by_id = {item["id"]: item for item in listed["items"]}
        assert listed["version"] == 1
        assert by_id[dead.id]["alive"] is False and by_id[alive.id]["alive"] is True
        ran = dd("cleanup", "--dry-run")
        assert ran.code == 0 and dead.name in ran.err and alive.name not in ran.err
        assert dd("cleanup").code == 0
        ids = {c.id for c in ours(engine)}
        assert dead.id not in ids and alive.id in ids
    finally:
        for container in (dead, alive):
            try:
                container.remove(force=True)
            except Exception:
                pass


def test_demo(dd: Any, engine: Any, python_image: str) -> None:
    ran = dd("demo", timeout=300)
    assert ran.code == 0, ran.err
    assert "No such file or directory" in ran.out  # the app's image has no /bin/sh
    assert "/usr/bin/python3.11 app.py" in ran.out
    assert ":8080" in ran.out
    assert "hello" in ran.out.lower()
    assert "0 change(s)" in ran.out
    assert not [c for c in ours(engine) if c.labels.get(ours_labels.ROLE) == "demo"]
    # Nor the warm sidecars its steps left beside the app (Podman would not remove the app
    # while they joined it).
    assert not [c for c in ours(engine, warm=True)
                if c.labels.get(ours_labels.TARGET, "").startswith("distrodebug-demo-")]
