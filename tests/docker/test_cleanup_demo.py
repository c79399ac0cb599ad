"""`sessions`, `cleanup` and `demo` against the real engine."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

from distrodebug import settings
from tests.conftest import ours

pytestmark = [pytest.mark.engine]


def leftover(engine: Any, toolbox: str, owner: str) -> Any:
    labels = {settings.LABEL_TOOL: settings.TOOL, settings.LABEL_SESSION: "dead0001",
              settings.LABEL_TARGET: "web", settings.LABEL_CREATED: "2026-01-01T00:00:00Z",
              settings.LABEL_OWNER: owner, "io.distrodebug.test": "1"}
    return engine.containers.create(toolbox, ["true"], labels=labels)


def test_sessions_and_cleanup(dd: Any, engine: Any, toolbox: str) -> None:
    host = socket.gethostname()
    dead = leftover(engine, toolbox, f"{host}:999999999")
    alive = leftover(engine, toolbox, f"{host}:1")  # pid 1 always runs: a live session
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
    assert not [c for c in ours(engine) if c.labels.get(settings.LABEL_ROLE) == "demo"]
