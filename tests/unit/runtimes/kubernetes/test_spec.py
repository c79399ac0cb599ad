from __future__ import annotations

from datetime import UTC, datetime

from distrodebug.runtimes.kubernetes.spec import (
    MAX_URL_SCRIPT,
    container_state,
    long_script_on_stdin,
    pick_container,
)

T0 = datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC).timestamp()


def test_container_state() -> None:
    running = {"state": {"running": {"startedAt": "2026-11-26T10:00:00Z"}}, "restartCount": 3}
    assert container_state(running, T0 + 2) == "restarting"
    assert container_state(running, T0 + 600) == "running"
    assert container_state({**running, "restartCount": 0}, T0 + 2) == "running"
    assert container_state({"state": {"waiting": {"reason": "CrashLoopBackOff"}}}, T0) == "restarting"
    assert container_state({"state": {"terminated": {"exitCode": 1}}}, T0) == "exited"
    assert container_state({}, T0) == "created"


def test_long_scripts_move_to_stdin() -> None:
    short = ["sh", "-c", "echo hi", "x"]
    assert long_script_on_stdin(short, False) == (short, b"")
    script = "echo " + "a" * MAX_URL_SCRIPT
    words, preamble = long_script_on_stdin(["env", "A=1", "sh", "-c", script, "arg"], False)
    assert words == ["env", "A=1", "sh", "-c", f'eval "$(head -c {len(script)})"', "arg"]
    assert preamble == script.encode()
    assert long_script_on_stdin(["sh", "-c", script], True) == (["sh", "-c", script], b"")


def test_pick_container_rules() -> None:
    pod = {"metadata": {"name": "p", "annotations": {"kubectl.kubernetes.io/default-container": "b"}},
           "spec": {"containers": [{"name": "a"}, {"name": "b"}]}}
    assert pick_container(pod, None)[0] == "b"
    assert pick_container(pod, "a") == ("a", "")
    del pod["metadata"]["annotations"]
    name, note = pick_container(pod, None)
    assert name == "a" and "first of a, b" in note


def test_custody_identity_from_the_pod_object() -> None:
    from distrodebug.runtimes.kubernetes.spec import custody_identity

    pod = {
        "metadata": {"uid": "u-1", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d9", "uid": "r-1",
             "controller": True, "blockOwnerDeletion": True}]},
        "spec": {"nodeName": "node-a"},
        "status": {"containerStatuses": [
            {"name": "app", "containerID": "containerd://abc",
             "imageID": "docker.io/library/web@sha256:" + "d" * 64}]},
    }
    found = custody_identity(pod, "app")
    assert found == {
        "pod_uid": "u-1", "node": "node-a",
        "owners": [{"kind": "ReplicaSet", "name": "web-5d9", "uid": "r-1", "controller": True}],
        "container_id": "containerd://abc", "image_digest": "sha256:" + "d" * 64,
        "repo_digests": ["docker.io/library/web@sha256:" + "d" * 64],
    }
    pending = custody_identity({"metadata": {"uid": "u-2"}, "spec": {}}, "app")
    assert pending["container_id"] is None and pending["image_digest"] is None
    assert pending["owners"] == [] and pending["repo_digests"] == []
