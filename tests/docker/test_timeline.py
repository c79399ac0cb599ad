"""The dump's volatile runtime state and the timeline of a bundle, on the real engine."""

from __future__ import annotations

import json
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("no_leftovers")]

# Prints, waits, writes a file in its writable /tmp, prints again (and a secret to stderr).
LATE_WRITER = """
import sys, time
print('booting', flush=True)
time.sleep(2)
open('/tmp/late.txt', 'w').write('written after the start')
print('wrote /tmp/late.txt', flush=True)
print('oops token=abc123secret', file=sys.stderr, flush=True)
time.sleep(3600)
"""


def _meta(bundle: Path) -> dict[str, bytes]:
    with tarfile.open(bundle) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar  # type: ignore[union-attr]
                if m.name.startswith("meta/") and m.isfile()}


def _late_writer(make_container: Any, python_image: str) -> Any:
    target = make_container(python_image, command=["-c", LATE_WRITER], user="65532")
    deadline = time.monotonic() + 30
    while b"wrote" not in target.logs() and time.monotonic() < deadline:
        time.sleep(0.2)
    return target


def test_dump_holds_state_events_and_timestamped_logs(dd: Any, make_container: Any,
                                                      python_image: str, tmp_path: Path) -> None:
    target = _late_writer(make_container, python_image)
    bundle = tmp_path / "late.tar"
    ran = dd("dump", target.name, "-f", str(bundle), "--path", "/tmp")
    assert ran.code == 0, ran.err
    meta = _meta(bundle)
    state = json.loads(meta["meta/runtime-state.json"])
    assert state["state"]["status"] == "running" and state["state"]["restart_count"] == 0
    assert state["state"]["started_at"].endswith("Z")
    assert [e["reason"] for e in state["events"]][:2] == ["create", "start"]
    logs = meta["meta/logs.txt"].decode()
    assert "booting" in logs and "wrote /tmp/late.txt" in logs
    assert "abc123secret" not in logs and "token=***REDACTED***" in logs
    assert all(line.split(" ", 1)[0].endswith("Z") for line in logs.splitlines())
    assert "meta/logs.previous.txt" not in meta
