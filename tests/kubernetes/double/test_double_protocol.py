"""The API-server double speaks the real protocol: no engine needed for these.

Ground truth is ../shared/reference/kubectl (captures of real kubectl and the Python client) and
kube-apiserver's own error texts. The captured raw protobuf bodies are embedded below so the
test does not depend on the shared folder; when it is present, every capture is checked too.
"""

from __future__ import annotations

import ast
import json
import threading
from pathlib import Path
from typing import Any

import pytest
import requests
from apiserver import ApiServerDouble
from apiserver.protobuf import decode_object

CAPTURES = Path(__file__).resolve().parents[2] / "reference" / "kubectl"
POD = {"metadata": {"name": "mypod", "labels": {"app": "demo"}},
       "spec": {"containers": [{"name": "app", "image": "busybox:1", "command": ["sleep", "1"]}]}}

# log-copy-general.txt (kubectl 1.33 `debug --copy-to`) and log-cani2.txt (`auth can-i
# patch pods --subresource=ephemeralcontainers`), byte for byte.
COPY_GENERAL = (
    b'k8s\x00\n\t\n\x02v1\x12\x03Pod\x12\xc2\x02\n"\n\x0bmypod-debug\x12\x00\x1a\x07default"\x00*'
    b"\x002\x008\x00B\x00\x12\x86\x02\x12h\n\x03app\x12)gcr.io/distroless/static-debian12:nonroot"
    b"*\x00B\x00j\x14/dev/termination-logr\x0cIfNotPresent\x80\x01\x00\x88\x01\x00\x90\x01\x00"
    b"\xa2\x01\x04File\x12N\n\x0edebugger-9jjb6\x12\x07busybox\x1a\x05sleep\x1a\x043600*\x00B\x00"
    b"j\x00r\x00z\x0e\n\x0c\n\nSYS_PTRACE\x80\x01\x00\x88\x01\x00\x90\x01\x00\xa2\x01\x04File\x1a"
    b"\x06Always \x1e2\x0cClusterFirstB\x00J\x00R\x00X\x00`\x00h\x00r\x06\x10\xfc\xff\x03\x18\x01"
    b"\x82\x01\x00\x8a\x01\x00\x9a\x01\x11default-scheduler\xc2\x01\x00\xd8\x01\x01\x1a\x13\n\x00"
    b'\x1a\x00"\x00*\x002\x00J\x00Z\x00r\x00\x88\x01\x00\x1a\x00"\x00'
)
CANI_SUBRESOURCE = (
    b"k8s\x00\n2\n\x17authorization.k8s.io/v1\x12\x17SelfSubjectAccessReview\x12Q\n\x10\n\x00"
    b'\x12\x00\x1a\x00"\x00*\x002\x008\x00B\x00\x123\n1\n\x07default\x12\x05patch\x1a\x00"\x00*'
    b"\x04pods2\x13ephemeralcontainers:\x00\x1a\x08\x08\x00\x12\x00\x1a\x00 \x00\x1a\x00\"\x00"
)


class Api:
    """A tiny authenticated HTTPS client for one user of the double."""

    def __init__(self, double: ApiServerDouble, user: str = "admin") -> None:
        self.base = double.url
        self.session = requests.Session()
        self.ca = double.ca_file  # per request: REQUESTS_CA_BUNDLE would beat session.verify
        self.session.headers["Authorization"] = f"Bearer {double.token(user)}"

    def __call__(self, method: str, path: str, body: Any = None, ctype: str = "application/json",
                 **kwargs: Any) -> requests.Response:
        data = body if isinstance(body, bytes) else json.dumps(body) if body is not None else None
        headers = {"Content-Type": ctype} if data is not None else {}
        headers.update(kwargs.pop("headers", {}))
        return self.session.request(method, self.base + path, data=data, headers=headers,
                                    timeout=10, verify=self.ca, **kwargs)


PODS = "/api/v1/namespaces/default/pods"


@pytest.fixture
def api(k8s_api_double: ApiServerDouble) -> Api:
    return Api(k8s_api_double)


def test_protobuf_bodies_decode_like_the_captures() -> None:
    pod = decode_object(COPY_GENERAL)
    assert pod["metadata"] == {"name": "mypod-debug", "namespace": "default"}
    spec = pod["spec"]
    assert spec["shareProcessNamespace"] is True
    assert spec["securityContext"] == {"runAsUser": 65532, "runAsNonRoot": True}
    assert spec["containers"][1] == {
        "name": "debugger-9jjb6", "image": "busybox", "command": ["sleep", "3600"],
        "resources": {}, "securityContext": {"capabilities": {"add": ["SYS_PTRACE"]}},
        "terminationMessagePolicy": "File"}
    review = decode_object(CANI_SUBRESOURCE)
    assert review["spec"]["resourceAttributes"] == {
        "namespace": "default", "verb": "patch", "resource": "pods",
        "subresource": "ephemeralcontainers"}


@pytest.mark.skipif(not CAPTURES.is_dir(), reason="shared reference captures not present")
def test_every_captured_protobuf_body_decodes() -> None:
    checked = 0
    for capture in sorted(CAPTURES.glob("log-*.txt")):
        lines = capture.read_text().splitlines()
        for i, line in enumerate(lines):
            if not line.strip().startswith("body(raw): "):
                continue
            got = decode_object(ast.literal_eval(line.strip()[len("body(raw): "):]))
            if got.get("metadata") == {}:
                del got["metadata"]
            if i + 1 >= len(lines) or "decoded protobuf body" not in lines[i + 1]:
                assert got == {"apiVersion": "v1", "kind": "DeleteOptions",
                               "gracePeriodSeconds": 0}, capture.name
                continue
            end = next((j for j in range(i + 2, len(lines)) if lines[j].startswith("===")),
                       len(lines))
            expected = json.loads("\n".join(lines[i + 2:end]))
            # the capture tool did not inline VolumeSource; real JSON does (kubernetes-notes §3.2)
            for volume in expected.get("spec", {}).get("volumes", []):
                volume.update(volume.pop("volumeSource", {}))
            assert got == expected, capture.name
            checked += 1
    assert checked >= 15


def test_discovery_and_version(k8s_api_double: ApiServerDouble, api: Api) -> None:
    k8s_api_double.version = "v1.29.7"
    assert api("GET", "/version").json()["gitVersion"] == "v1.29.7"
    assert api("GET", "/api").json()["versions"] == ["v1"]
    names = {r["name"] for r in api("GET", "/api/v1").json()["resources"]}
    assert {"pods", "pods/ephemeralcontainers", "pods/attach", "pods/exec", "pods/log", "nodes",
            "namespaces", "events"} <= names
    groups = {g["name"] for g in api("GET", "/apis").json()["groups"]}
    assert groups == {"apps", "authorization.k8s.io"}
    assert any(r["name"] == "deployments" for r in api("GET", "/apis/apps/v1").json()["resources"])
    k8s_api_double.ephemeral_containers = False
    names = {r["name"] for r in api("GET", "/api/v1").json()["resources"]}
    assert "pods/ephemeralcontainers" not in names
    assert api("GET", "/openapi/v2").status_code == 404


def test_status_texts(k8s_api_double: ApiServerDouble, api: Api) -> None:
    missing = api("GET", f"{PODS}/nosuch")
    assert missing.status_code == 404
    assert missing.json() == {"kind": "Status", "apiVersion": "v1", "metadata": {},
                              "status": "Failure", "message": 'pods "nosuch" not found',
                              "reason": "NotFound", "details": {"name": "nosuch", "kind": "pods"},
                              "code": 404}
    assert api("POST", PODS, POD).status_code == 201
    again = api("POST", PODS, POD).json()
    assert (again["code"], again["reason"], again["message"]) == (
        409, "AlreadyExists", 'pods "mypod" already exists')
    assert api("POST", "/api/v1/namespaces/nope/pods", POD).json()["message"] == \
        'namespaces "nope" not found'
    bad = api("POST", PODS, {"metadata": {"name": "Bad_Name"}, "spec": {"containers": [{}]}}).json()
    assert bad["code"] == 422 and bad["reason"] == "Invalid"
    assert bad["message"].startswith('Pod "Bad_Name" is invalid: [metadata.name: Invalid value: '
                                     '"Bad_Name": a lowercase RFC 1123 subdomain')
    assert "spec.containers[0].name: Required value" in bad["message"]
    k8s_api_double.add_user("alice")
    k8s_api_double.deny("list", "pods", user="alice")
    k8s_api_double.deny("get", "nodes", user="alice")
    alice = Api(k8s_api_double, "alice")
    assert alice("GET", PODS).json()["message"] == (
        'pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the '
        'namespace "default"')
    assert alice("GET", "/api/v1/nodes/node-1").json()["message"] == (
        'nodes "node-1" is forbidden: User "alice" cannot get resource "nodes" in API group "" '
        "at the cluster scope")
    assert alice("GET", f"{PODS}/mypod").status_code == 200
    k8s_api_double.revoke("alice")
    assert alice("GET", f"{PODS}/mypod").json()["reason"] == "Unauthorized"


def _eph(name: str, **extra: Any) -> dict[str, Any]:
    return dict({"name": name, "image": "busybox:1", "resources": {},
                 "terminationMessagePolicy": "File", "targetContainerName": "app"}, **extra)


SMP = "application/strategic-merge-patch+json"


def test_ephemeral_containers_subresource_rules(k8s_api_double: ApiServerDouble, api: Api) -> None:
    api("POST", PODS, POD)
    url = f"{PODS}/mypod/ephemeralcontainers"
    first = api("PATCH", url, {"spec": {"ephemeralContainers": [_eph("debugger-old")]}}, SMP)
    assert first.status_code == 200
    added = first.json()["spec"]["ephemeralContainers"][0]
    assert added["imagePullPolicy"] == "IfNotPresent"
    assert added["terminationMessagePath"] == "/dev/termination-log"
    # kubectl's second debugger: the two-way patch carries $setElementOrder (log-eph-second.txt)
    order = [{"name": "debugger-old"}, {"name": "debugger-new"}]
    second = api("PATCH", url, {"spec": {"$setElementOrder/ephemeralContainers": order,
                                         "ephemeralContainers": [_eph("debugger-new")]}},
                 SMP).json()
    assert [c["name"] for c in second["spec"]["ephemeralContainers"]] == [
        "debugger-old", "debugger-new"]
    # merge patch replaces the list: removing an existing ephemeral container is forbidden
    removed = api("PATCH", url, {"spec": {"ephemeralContainers": [_eph("debugger-3")]}},
                  "application/merge-patch+json").json()
    assert removed["code"] == 422
    assert ('spec.ephemeralContainers: Forbidden: existing ephemeral containers "debugger-old" '
            "may not be removed\n") in removed["message"]
    changed = api("PATCH", url, {"spec": {"ephemeralContainers": [
        _eph("debugger-old", image="other:2")]}}, SMP).json()
    assert changed["details"]["causes"][0]["field"] == "spec.ephemeralContainers[debugger-old]"
    assert 'existing ephemeral containers "debugger-old" may not be changed\n' in changed["message"]
    forbidden = api("PATCH", url, {"spec": {"ephemeralContainers": [_eph(
        "debugger-x", ports=[{"containerPort": 80}], resources={"limits": {"cpu": "1"}},
        readinessProbe={"exec": {"command": ["true"]}})]}}, SMP).json()
    assert forbidden["message"] == (
        'Pod "mypod" is invalid: [spec.ephemeralContainers[2].ports: Forbidden: cannot be set for '
        "an Ephemeral Container, spec.ephemeralContainers[2].resources: Forbidden: cannot be set "
        "for an Ephemeral Container, spec.ephemeralContainers[2].readinessProbe: Forbidden: cannot "
        "be set for an Ephemeral Container]")
    assert forbidden["details"]["causes"][0] == {
        "reason": "FieldValueForbidden", "message": "Forbidden: cannot be set for an Ephemeral "
        "Container", "field": "spec.ephemeralContainers[2].ports"}
    duplicate = api("PATCH", url, {"spec": {"ephemeralContainers": [_eph("app")]}}, SMP).json()
    assert duplicate["message"] == ('Pod "mypod" is invalid: spec.ephemeralContainers[2].name: '
                                    'Duplicate value: "app"')
    target = api("PATCH", url, {"spec": {"ephemeralContainers": [
        _eph("debugger-y", targetContainerName="nosuch")]}}, SMP).json()
    assert target["message"] == ('Pod "mypod" is invalid: spec.ephemeralContainers[2]'
                                 '.targetContainerName: Not found: "nosuch"')
    pod = api("GET", url).json()
    assert len(pod["spec"]["ephemeralContainers"]) == 2
    stale = dict(pod, metadata=dict(pod["metadata"], resourceVersion="1"))
    assert api("PUT", url, stale).json()["reason"] == "Conflict"
    pod["spec"]["ephemeralContainers"].append(_eph("debugger-put"))
    assert api("PUT", url, pod).status_code == 200


def test_json_patch_and_missing_subresource(k8s_api_double: ApiServerDouble, api: Api) -> None:
    api("POST", PODS, POD)
    url = f"{PODS}/mypod/ephemeralcontainers"
    patch = [{"op": "add", "path": "/spec/ephemeralContainers/-", "value": _eph("d1")}]
    failed = api("PATCH", url, patch, "application/json-patch+json").json()
    assert failed["code"] == 422
    assert "doc is missing path" in failed["details"]["causes"][0]["message"]
    patch[0]["path"] = "/spec/ephemeralContainers"
    patch[0]["value"] = [_eph("d1")]
    assert api("PATCH", url, patch, "application/json-patch+json").status_code == 200
    k8s_api_double.ephemeral_containers = False
    gone = api("PATCH", url, {"spec": {"ephemeralContainers": [_eph("d2")]}}, SMP).json()
    assert gone == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": "the server could not find the requested resource",
                    "reason": "NotFound", "details": {}, "code": 404}


def test_pod_security_admission(k8s_api_double: ApiServerDouble, api: Api) -> None:
    k8s_api_double.label_namespace("default", {"pod-security.kubernetes.io/enforce": "baseline"})
    api("POST", PODS, POD)
    general = _eph("debugger-xyz", securityContext={"capabilities": {"add": ["SYS_PTRACE"]}})
    refused = api("PATCH", f"{PODS}/mypod/ephemeralcontainers",
                  {"spec": {"ephemeralContainers": [general]}}, SMP).json()
    # client-eph-pss.txt
    assert refused["code"] == 403
    assert refused["message"] == (
        'pods "mypod" is forbidden: violates PodSecurity "baseline:latest": non-default '
        'capabilities (container "debugger-xyz" must not include "SYS_PTRACE" in '
        "securityContext.capabilities.add)")
    node_pod = {"metadata": {"name": "node-debugger"}, "spec": {
        "hostPID": True, "hostNetwork": True,
        "volumes": [{"name": "host-root", "hostPath": {"path": "/"}}],
        "containers": [{"name": "debugger", "image": "busybox:1",
                        "securityContext": {"privileged": True},
                        "volumeMounts": [{"name": "host-root", "mountPath": "/host"}]}]}}
    assert api("POST", PODS, node_pod).json()["message"] == (
        'pods "node-debugger" is forbidden: violates PodSecurity "baseline:latest": host '
        'namespaces (hostNetwork=true, hostPID=true), hostPath volumes (volume "host-root"), '
        'privileged (container "debugger" must not set securityContext.privileged=true)')
    k8s_api_double.label_namespace("default", {"pod-security.kubernetes.io/enforce": None,
                                               "pod-security.kubernetes.io/warn": "restricted"})
    warned = api("POST", PODS, dict(POD, metadata={"name": "warned"}))
    assert warned.status_code == 201
    assert 'would violate PodSecurity \\"restricted:latest\\": allowPrivilegeEscalation != false' \
        in warned.headers["Warning"]
    k8s_api_double.label_namespace("default", {"pod-security.kubernetes.io/enforce": "restricted"})
    restricted = {"runAsNonRoot": True, "allowPrivilegeEscalation": False,
                  "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}
    compliant = {"metadata": {"name": "ok"}, "spec": {"containers": [
        {"name": "app", "image": "busybox:1", "securityContext": restricted}]}}
    assert api("POST", PODS, compliant).status_code == 201


def test_self_subject_access_review(k8s_api_double: ApiServerDouble, api: Api) -> None:
    k8s_api_double.deny("patch", "pods", "ephemeralcontainers")
    url = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"

    def allowed(**attrs: str) -> bool:
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": dict({"namespace": "default"}, **attrs)}}
        answer = api("POST", url, body)
        assert answer.status_code == 201
        return bool(answer.json()["status"]["allowed"])

    assert not allowed(verb="patch", resource="pods", subresource="ephemeralcontainers")
    assert allowed(verb="patch", resource="pods")
    # `kubectl auth can-i patch pods/ephemeralcontainers` asks about a pod *named* so (log-cani)
    assert allowed(verb="patch", resource="pods", name="ephemeralcontainers")
    protobuf = api("POST", url, CANI_SUBRESOURCE, "application/vnd.kubernetes.protobuf")
    assert protobuf.json()["status"]["allowed"] is False


def test_list_and_watch(k8s_api_double: ApiServerDouble, api: Api) -> None:
    api("POST", PODS, POD)
    api("POST", PODS, dict(POD, metadata={"name": "other", "labels": {"app": "x"}}))
    listed = api("GET", PODS, params={"fieldSelector": "metadata.name=mypod", "limit": "500",
                                      "resourceVersion": "0"}).json()
    assert listed["kind"] == "PodList" and [p["metadata"]["name"] for p in listed["items"]] == [
        "mypod"]
    assert [p["metadata"]["name"] for p in api("GET", PODS, params={
        "labelSelector": "app in (x,y)"}).json()["items"]] == ["other"]
    events: list[dict[str, Any]] = []

    def watch() -> None:
        with api("GET", PODS, stream=True, params={
                "watch": "true", "fieldSelector": "metadata.name=mypod", "timeoutSeconds": "1",
                "resourceVersion": listed["metadata"]["resourceVersion"]}) as resp:
            for line in resp.iter_lines():
                events.append(json.loads(line))

    reader = threading.Thread(target=watch)
    reader.start()
    patch = {"metadata": {"labels": {"step": "1"}}}
    assert api("PATCH", f"{PODS}/other", patch, SMP).status_code == 200
    assert api("PATCH", f"{PODS}/mypod", patch, SMP).status_code == 200
    assert api("DELETE", f"{PODS}/mypod").status_code == 200
    reader.join(10)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("MODIFIED", "mypod"), ("DELETED", "mypod")]
    assert events[0]["object"]["metadata"]["labels"]["step"] == "1"
    spec_change = api("PATCH", f"{PODS}/other", {"spec": {"restartPolicy": "Never"}}, SMP).json()
    assert spec_change["code"] == 422 and "pod updates may not change fields" in \
        spec_change["message"]


def test_deployment_resolves_to_pods(k8s_api_double: ApiServerDouble, api: Api) -> None:
    deploy = {"metadata": {"name": "web"}, "spec": {
        "replicas": 2, "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": POD["spec"]}}}
    created = api("POST", "/apis/apps/v1/namespaces/default/deployments", deploy)
    assert created.status_code == 201
    got = api("GET", "/apis/apps/v1/namespaces/default/deployments/web").json()
    selector = ",".join(f"{k}={v}" for k, v in got["spec"]["selector"]["matchLabels"].items())
    pods = api("GET", PODS, params={"labelSelector": selector}).json()["items"]
    assert len(pods) == 2
    owner = pods[0]["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "ReplicaSet"
    assert api("GET", f"/apis/apps/v1/namespaces/default/replicasets/{owner['name']}").json()[
        "metadata"]["ownerReferences"][0]["name"] == "web"
    missing = api("GET", "/apis/apps/v1/namespaces/default/deployments/nope").json()
    assert missing["message"] == 'deployments.apps "nope" not found'


def test_request_log(k8s_api_double: ApiServerDouble, api: Api) -> None:
    k8s_api_double.clear_requests()
    api("POST", PODS, POD, headers={"User-Agent": "probe/1"})
    api("GET", f"{PODS}/mypod")
    log = k8s_api_double.requests()
    assert [(r.method, r.path, r.status) for r in log] == [
        ("POST", PODS, 201), ("GET", f"{PODS}/mypod", 200)]
    assert log[0].json()["metadata"]["name"] == "mypod"
    assert log[0].user_agent == "probe/1" and log[0].user == "admin"
    assert k8s_api_double.requests(method="GET") == log[1:]
