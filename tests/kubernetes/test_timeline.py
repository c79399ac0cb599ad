"""A pod's dump holds its volatile state: status, Events, logs, and the run before a restart."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import zstandard

from distrodebug.runtimes.kubernetes.spec import CRASH_LOOP_UPTIME
from tests.fixtures.cluster import Cluster, pod

# First run: say so and exit 3; the restarted run finds the marker in the emptyDir and stays up.
ONCE = """
import os, sys, time
if os.path.exists('/work/ran'):
    print('second run up', flush=True)
    time.sleep(3600)
open('/work/ran', 'w').write('1')
print('first run failing with password=hunter2', flush=True)
sys.exit(3)
"""


def _meta(bundle: Path) -> dict[str, bytes]:
    with zstandard.open(bundle, "rb") as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar  # type: ignore[union-attr]
                if m.name.startswith("meta/") and m.isfile()}


def test_dump_of_a_restarted_pod_holds_events_and_both_runs_logs(cluster: Cluster, ns: str,
                                                                  tmp_path: Path) -> None:
    manifest = pod("once", cluster.images["python"], user=65532,
                   command=["/usr/bin/python3.11", "-c", ONCE],
                   volumes=[{"name": "work", "emptyDir": {}}])
    manifest["spec"]["containers"][0]["volumeMounts"] = [{"name": "work", "mountPath": "/work"}]
    cluster.apply(manifest, namespace=ns)

    def restarted_and_up(found: dict[str, Any]) -> bool:
        status = (found.get("status") or {}).get("containerStatuses") or [{}]
        return bool(status[0].get("restartCount")) and "running" in (status[0].get("state") or {})

    cluster.wait_for("once", ns, restarted_and_up, timeout=120)
    time.sleep(CRASH_LOOP_UPTIME + 1)  # a restarted container counts as crash-looping until then
    bundle = tmp_path / "once.tar.zst"
    ran = cluster.dd("dump", "pod/once", "-n", ns, "-f", str(bundle), "--path", "/work")
    assert ran.code == 0, ran.err
    meta = _meta(bundle)
    state = json.loads(meta["meta/runtime-state.json"])
    container = state["state"]["container"]
    assert container["restart_count"] >= 1 and container["last"]["exit_code"] == 3
    reasons = {e["reason"] for e in state["events"]}
    assert {"Scheduled", "Started", "BackOff"} & reasons and "Pulled" in reasons, reasons
    assert all(e["time"].endswith("Z") for e in state["events"])
    raw_events = json.loads(meta["meta/events.json"])
    uid = cluster.get("pod", "once", ns)["metadata"]["uid"]
    assert raw_events and all(e["involvedObject"]["uid"] == uid for e in raw_events)
    assert b"second run up" in meta["meta/logs.txt"]
    previous = meta["meta/logs.previous.txt"].decode()
    assert "first run failing" in previous and "hunter2" not in previous
    assert previous.split(" ", 1)[0].startswith("20")  # timestamps=true: each line starts with one
    timeline = subprocess.run([sys.executable, "-m", "distrodebug", "report", str(bundle),
                               "--timeline", "-o", "json"], capture_output=True, text=True)
    assert timeline.returncode == 0, timeline.stderr
    rows = json.loads(timeline.stdout)["events"]
    kinds = {r["kind"] for r in rows}
    assert {"event", "log", "process"} <= kinds, kinds
    first = next(i for i, r in enumerate(rows) if "first run failing" in r["text"])
    second = next(i for i, r in enumerate(rows) if "second run up" in r["text"])
    assert first < second
    # The debugger's own processes (its reaper, started beside the exec'd collector) are ours.
    processes = json.loads(meta["meta/processes.json"])
    assert [p["pid"] for p in processes] == [1], processes
    assert processes[0]["started"] and processes[0]["started_error"] < 0.1
