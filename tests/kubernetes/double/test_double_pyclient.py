"""The official Python client against the API-server double (the steps distrodebug takes)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from apiserver import ApiServerDouble
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException
from kubernetes.stream import stream

pytestmark = pytest.mark.engine


def core(double: ApiServerDouble, user: str | None = None) -> client.CoreV1Api:
    """A CoreV1Api on its own ApiClient (stream() patches the client it is given)."""
    path = double.kubeconfig_for(user) if user else double.kubeconfig
    return client.CoreV1Api(config.new_client_from_config(config_file=path))


@pytest.fixture
def app(k8s_double: ApiServerDouble, k8s_busybox_image: str) -> ApiServerDouble:
    k8s_double.create_pod({"metadata": {"name": "mypod"}, "spec": {"containers": [
        {"name": "app", "image": k8s_busybox_image, "command": ["sleep", "3600"]}]}})
    k8s_double.wait_for_container("mypod", "app")
    return k8s_double


def _read_until(ws: Any, marker: bytes, timeout: float = 10) -> bytes:
    out, deadline = b"", time.monotonic() + timeout
    while marker not in out and time.monotonic() < deadline and ws.is_open():
        ws.update(timeout=0.5)
        out += ws.read_stdout() or b""
    return out


def test_ephemeral_debugger_flow(app: ApiServerDouble, k8s_busybox_image: str) -> None:
    v1 = core(app)
    assert v1.read_namespaced_pod("mypod", "default").status.phase == "Running"
    body = {"spec": {"ephemeralContainers": [{
        "name": "debugger-py", "image": k8s_busybox_image, "command": ["sh"],
        "stdin": True, "stdinOnce": True, "tty": True, "targetContainerName": "app",
        "securityContext": {"capabilities": {"add": ["SYS_PTRACE"]}}}]}}
    patched = v1.patch_namespaced_pod_ephemeralcontainers("mypod", "default", body)
    assert [c.name for c in patched.spec.ephemeral_containers] == ["debugger-py"]
    assert app.requests(method="PATCH")[0].headers["Content-Type"] == \
        "application/strategic-merge-patch+json"
    seen = []
    for event in watch.Watch().stream(v1.list_namespaced_pod, "default", timeout_seconds=20,
                                      field_selector="metadata.name=mypod"):
        statuses = event["object"].status.ephemeral_container_statuses or []
        seen.append(event["type"])
        if any(s.state.running for s in statuses):
            break
    assert seen[0] == "ADDED" and seen[-1] == "MODIFIED"
    ws = stream(core(app).connect_get_namespaced_pod_attach, "mypod", "default",
                container="debugger-py", stdin=True, stdout=True, stderr=False, tty=True,
                _preload_content=False, binary=True)
    assert ws.subprotocol == "v5.channel.k8s.io"
    ws.write_channel(4, json.dumps({"Width": 100, "Height": 30}))
    ws.write_stdin(b"stty size; ps -o args | grep -c '[s]leep 3600'; echo done-$((1+1))\n")
    out = _read_until(ws, b"done-2")
    assert b"30 100" in out and b"\r\n1\r\n" in out  # resized, and the target's process is there
    ws.write_stdin(b"exit 3\n")
    ws.run_forever(timeout=10)
    assert ws.returncode == 0  # attach carries no exit code; the pod status does
    ws.close()
    state = app.wait_for_container("mypod", "debugger-py", "terminated")["state"]
    assert state["terminated"]["exitCode"] == 3


def test_exec_binary_stdin_eof_and_exit_code(app: ApiServerDouble) -> None:
    payload = bytes(range(256)) * 2048  # every byte value, 512 KiB
    ws = stream(core(app).connect_get_namespaced_pod_exec, "mypod", "default", container="app",
                command=["sh", "-c", "cat; echo done >&2; exit 7"], stdin=True, stdout=True,
                stderr=True, tty=False, _preload_content=False, binary=True)
    for i in range(0, len(payload), 65536):
        ws.write_stdin(payload[i:i + 65536])
    ws.close_channel(0)  # v5 CLOSE: stdin EOF, so cat ends
    # run_forever buffers every channel until the server closes; reading channels inside the
    # loop instead can leave the last frames unread (read_* may call update() themselves)
    ws.run_forever(timeout=20)
    out, err = ws.read_stdout() or b"", ws.read_stderr() or b""
    first = next((i for i, (a, b) in enumerate(zip(out, payload, strict=False)) if a != b),
                 None)
    assert (len(out), first, err) == (len(payload), None, b"done\n")
    assert ws.returncode == 7


def test_v4_only_server(app: ApiServerDouble) -> None:
    app.stream_protocols = ("v4.channel.k8s.io",)  # an apiserver before 1.30
    ws = stream(core(app).connect_get_namespaced_pod_exec, "mypod", "default", container="app",
                command=["sh", "-c", "echo v4; exit 2"], stdout=True, stderr=True, stdin=False,
                tty=False, _preload_content=False, binary=True)
    ws.run_forever(timeout=10)
    assert ws.subprotocol == "v4.channel.k8s.io"
    assert ws.read_stdout() == b"v4\n" and ws.returncode == 2


def test_errors_reach_the_client(app: ApiServerDouble, k8s_busybox_image: str) -> None:
    v1 = core(app)
    with pytest.raises(ApiException) as missing:
        v1.read_namespaced_pod("nosuch", "default")
    assert missing.value.status == 404
    assert json.loads(missing.value.body)["details"] == {"name": "nosuch", "kind": "pods"}
    pod = v1.read_namespaced_pod_ephemeralcontainers("mypod", "default")
    pod.metadata.resource_version = "1"
    pod.spec.ephemeral_containers = [client.V1EphemeralContainer(
        name="debugger-put", image=k8s_busybox_image, command=["sleep", "1"])]
    with pytest.raises(ApiException) as stale:
        v1.replace_namespaced_pod_ephemeralcontainers("mypod", "default", pod)
    assert stale.value.status == 409
    app.add_user("bob")
    app.deny("patch", "pods", "ephemeralcontainers", user="bob")
    with pytest.raises(ApiException) as refused:
        core(app, "bob").patch_namespaced_pod_ephemeralcontainers(
            "mypod", "default", {"spec": {"ephemeralContainers": [
                {"name": "d", "image": k8s_busybox_image}]}})
    assert refused.value.status == 403
    review = client.AuthorizationV1Api(config.new_client_from_config(
        config_file=app.kubeconfig_for("bob"))).create_self_subject_access_review({
            "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"namespace": "default", "verb": "patch",
                                            "resource": "pods",
                                            "subresource": "ephemeralcontainers"}}})
    assert review.status.allowed is False


def test_logs(k8s_double: ApiServerDouble, k8s_busybox_image: str) -> None:
    talker = {"name": "app", "image": k8s_busybox_image,
              "command": ["sh", "-c", "seq 1 5; echo err >&2"]}
    k8s_double.create_pod({"metadata": {"name": "talker"},
                           "spec": {"restartPolicy": "Never", "containers": [talker]}})
    k8s_double.wait_for_container("talker", "app", "terminated")
    v1 = core(k8s_double)
    # stdout and stderr are separate pipes: their interleaving in the log is not ordered
    lines = v1.read_namespaced_pod_log("talker", "default").splitlines()
    assert sorted(lines) == ["1", "2", "3", "4", "5", "err"]
    assert [x for x in lines if x != "err"] == ["1", "2", "3", "4", "5"]
    assert len(v1.read_namespaced_pod_log("talker", "default", tail_lines=2).splitlines()) == 2
    assert v1.read_namespaced_pod("talker", "default").status.phase == "Succeeded"
