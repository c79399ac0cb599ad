"""The double's kubelet on the real engine: container states, restarts, namespaces, cleanup."""

from __future__ import annotations

from typing import Any

import pytest
from apiserver import ApiServerDouble

pytestmark = pytest.mark.engine


def pod(name: str, image: str, *containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": dict(
        {"containers": [dict({"image": image}, **c) for c in containers]}, **spec)}


def status_of(double: ApiServerDouble, name: str, container: str = "app") -> dict[str, Any]:
    found = double.get_pod(name) or {}
    for key in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"):
        for cs in found.get("status", {}).get(key) or []:
            if cs["name"] == container:
                return cs  # type: ignore[no-any-return]
    return {}


def run(docker_engine: Any, double: ApiServerDouble, pod_name: str, container: str,
        cmd: str) -> tuple[int, str]:
    cid = double.docker_id(pod_name, container)
    result = docker_engine.containers.get(cid).exec_run(["sh", "-c", cmd])
    return result.exit_code, result.output.decode()


def test_restart_policies(k8s_double: ApiServerDouble, k8s_busybox_image: str) -> None:
    img = k8s_busybox_image
    k8s_double.create_pod(pod("crash", img, {"name": "app", "command": ["false"]}))
    k8s_double.create_pod(pod("never", img, {"name": "app", "command": ["false"]},
                              restartPolicy="Never"))
    k8s_double.create_pod(pod("done", img, {"name": "app", "command": ["true"]},
                              restartPolicy="OnFailure"))
    failed = k8s_double.wait_for_pod("never", lambda p: p["status"]["phase"] == "Failed")
    term = failed["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (term["exitCode"], term["reason"]) == (1, "Error")
    done = k8s_double.wait_for_pod("done", lambda p: p["status"]["phase"] == "Succeeded")
    assert done["status"]["containerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    crash = k8s_double.wait_for_pod("crash", lambda p: p["status"]["containerStatuses"][0][
        "restartCount"] >= 2 and "waiting" in p["status"]["containerStatuses"][0]["state"])
    cs = crash["status"]["containerStatuses"][0]
    assert crash["status"]["phase"] == "Running"
    assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    uid = crash["metadata"]["uid"]
    assert cs["state"]["waiting"]["message"].endswith(
        f"restarting failed container=app pod=crash_default({uid})")
    assert cs["lastState"]["terminated"]["exitCode"] == 1


def test_image_and_config_errors(k8s_double: ApiServerDouble, k8s_busybox_image: str) -> None:
    img = k8s_busybox_image
    k8s_double.create_pod(pod("pull", "registry.invalid/nope:1", {"name": "app"}))
    k8s_double.create_pod(pod("never", "nope:2", {"name": "app", "imagePullPolicy": "Never"}))
    k8s_double.create_pod(pod("root", img, {"name": "app", "command": ["sleep", "60"]},
                              securityContext={"runAsNonRoot": True}))
    k8s_double.create_pod(pod("zero", img, {"name": "app", "command": ["sleep", "60"],
                                            "securityContext": {"runAsUser": 0}},
                              securityContext={"runAsNonRoot": True}))

    def reason(name: str, wanted: str) -> dict[str, Any]:
        found = k8s_double.wait_for_pod(name, lambda p: (p["status"].get("containerStatuses") or [
            {}])[0].get("state", {}).get("waiting", {}).get("reason") == wanted)
        state = found["status"]["containerStatuses"][0]["state"]
        return state["waiting"]  # type: ignore[no-any-return]

    assert reason("pull", "ErrImagePull")["message"].startswith(
        'Failed to pull image "registry.invalid/nope:1": failed to pull and unpack image '
        '"registry.invalid/nope:1"')
    assert reason("pull", "ImagePullBackOff")["message"] == \
        'Back-off pulling image "registry.invalid/nope:1"'
    assert reason("never", "ErrImageNeverPull")["message"] == \
        'Container image "nope:2" is not present with pull policy of Never'
    uid = (k8s_double.get_pod("root") or {})["metadata"]["uid"]
    assert reason("root", "CreateContainerConfigError")["message"] == (
        f'container has runAsNonRoot and image will run as root (pod: "root_default({uid})", '
        "container: app)")
    assert reason("zero", "CreateContainerConfigError")["message"].startswith(
        "container's runAsUser breaks non-root policy")
    assert (k8s_double.get_pod("pull") or {})["status"]["phase"] == "Pending"


def test_pod_sandbox_is_shared(k8s_double: ApiServerDouble, k8s_busybox_image: str,
                               docker_engine: Any) -> None:
    img = k8s_busybox_image
    k8s_double.create_pod(pod(
        "shared", img,
        {"name": "app", "command": ["sleep", "3600"], "securityContext": {"runAsUser": 65532},
         "volumeMounts": [{"name": "scratch", "mountPath": "/data"}]},
        {"name": "side", "command": ["sleep", "3601"],
         "securityContext": {"readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}},
         "volumeMounts": [{"name": "scratch", "mountPath": "/data"}]},
        shareProcessNamespace=True,
        initContainers=[{"name": "init", "image": img, "command": ["sh", "-c", "echo seeded > "
                                                                   "/data/seed; chmod 777 /data"],
                         "volumeMounts": [{"name": "scratch", "mountPath": "/data"}]}],
        volumes=[{"name": "scratch", "emptyDir": {}}]))
    k8s_double.wait_for_container("shared", "side")
    k8s_double.wait_for_container("shared", "app")
    assert status_of(k8s_double, "shared", "init")["state"]["terminated"]["reason"] == "Completed"
    assert run(docker_engine, k8s_double, "shared", "app", "cat /data/seed; echo x > /data/x")[
        1] == "seeded\n"
    code, out = run(docker_engine, k8s_double, "shared", "side", "touch /ro")
    assert code == 1 and "Read-only file system" in out, out
    code, out = run(docker_engine, k8s_double, "shared", "side",
                    "cat /data/x; hostname; ps -o pid,user,args")
    lines = out.splitlines()
    assert lines[:2] == ["x", "shared"], out
    table = [line.split() for line in lines[lines.index(next(x for x in lines if "PID" in x)):]]
    assert table[1] == ["1", "65535", "sleep", "2147483647"], out  # the infra is PID 1
    assert any(row[2:] == ["sleep", "3600"] for row in table[2:]), out
    code, out = run(docker_engine, k8s_double, "shared", "side", "chown 1 /tmp")
    assert code != 0  # CAP_CHOWN dropped


def test_ephemeral_container_joins_the_target(k8s_double: ApiServerDouble,
                                              k8s_busybox_image: str, docker_engine: Any) -> None:
    img = k8s_busybox_image
    k8s_double.create_pod(pod("target", img, {"name": "app", "command": ["sleep", "3600"]},
                              securityContext={"runAsNonRoot": True, "runAsUser": 65532}))
    k8s_double.wait_for_container("target", "app")

    def add(name: str, **extra: Any) -> None:
        k8s_double.add_ephemeral_container("target", dict(
            {"name": name, "image": img, "targetContainerName": "app"}, **extra))

    add("debugger", command=["sleep", "60"])
    k8s_double.wait_for_container("target", "debugger")
    code, out = run(docker_engine, k8s_double, "target", "debugger", "ps -o pid,args; id -u")
    assert out.splitlines()[1].split() == ["1", "sleep", "3600"] and out.endswith("65532\n")
    add("as-root", command=["sleep", "60"], securityContext={"runAsUser": 0})
    waiting = k8s_double.wait_for_pod("target", lambda p: any(
        s["name"] == "as-root" and "waiting" in s["state"] and
        s["state"]["waiting"]["reason"] == "CreateContainerConfigError"
        for s in p["status"].get("ephemeralContainerStatuses", [])))
    assert waiting["status"]["phase"] == "Running"


def test_privileged_fails_visibly_or_runs(k8s_double: ApiServerDouble,
                                          k8s_busybox_image: str) -> None:
    k8s_double.create_pod(pod("priv", k8s_busybox_image, {
        "name": "app", "command": ["sleep", "60"], "securityContext": {"privileged": True}},
        restartPolicy="Never"))
    found = k8s_double.wait_for_pod("priv", lambda p: p["status"]["phase"] != "Pending")
    state = found["status"]["containerStatuses"][0]["state"]
    if "terminated" in state:  # this sandbox cannot start privileged containers
        assert (state["terminated"]["reason"], state["terminated"]["exitCode"]) == ("StartError",
                                                                                    128)
        assert state["terminated"]["message"]
    else:
        assert "running" in state


def test_graceful_delete_and_cleanup(k8s_double_factory: Any, k8s_busybox_image: str,
                                     docker_engine: Any) -> None:
    double = k8s_double_factory()
    double.create_pod(pod("bye", k8s_busybox_image, {"name": "app", "command": ["sleep", "600"]},
                          terminationGracePeriodSeconds=1))
    double.wait_for_container("bye", "app")
    deleting = double.delete_pod("bye", grace=None)  # the pod's own grace period
    assert deleting["metadata"]["deletionGracePeriodSeconds"] == 1
    double.wait_for_deletion("bye", timeout=10)  # sleep ignores SIGTERM: killed after 1 s
    flt = {"label": f"io.distrodebug.k8s-double={double.id}"}
    assert docker_engine.containers.list(all=True, filters=flt) == []
    double.create_pod(pod("left", k8s_busybox_image, {"name": "app", "command": ["sleep", "600"]},
                          volumes=[{"name": "v", "emptyDir": {}}]))
    double.wait_for_container("left", "app")
    assert len(docker_engine.containers.list(all=True, filters=flt)) == 2
    assert len(docker_engine.volumes.list(filters=flt)) == 1
    double.stop()
    assert docker_engine.containers.list(all=True, filters=flt) == []
    assert docker_engine.volumes.list(filters=flt) == []


def test_taints_and_events(k8s_double: ApiServerDouble, k8s_busybox_image: str) -> None:
    k8s_double.set_taints([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}])
    k8s_double.create_pod(pod("picky", k8s_busybox_image, {"name": "app", "command": ["true"]}))
    waiting = k8s_double.wait_for_pod("picky", lambda p: bool(p["status"].get("conditions")))
    assert waiting["status"]["conditions"][0]["message"].startswith(
        "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: db}.")
    k8s_double.create_pod(pod("tolerant", k8s_busybox_image,
                              {"name": "app", "command": ["sleep", "60"]},
                              tolerations=[{"operator": "Exists"}]))
    k8s_double.wait_for_container("tolerant", "app")
    events = k8s_double.call(k8s_double.store.list, "events", "default")
    reasons = [e["reason"] for e in events if e["involvedObject"]["name"] == "tolerant"]
    assert reasons == ["Scheduled", "Created", "Started"]
    assert any(e["reason"] == "FailedScheduling" for e in events)
