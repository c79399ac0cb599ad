"""What the real cluster refuses, and what distrodebug then says: RBAC, Pod Security, the kubelet."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.cluster import MANIFESTS, NODE, RESTRICTED, Cluster, pod

RESTRICTED_USER = "dd-restricted"


def grant(cluster: Cluster, ns: str, rules: list[dict[str, Any]], name: str = "debug") -> None:
    """A Role with ``rules`` for the restricted user in ``ns``."""
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": name}, "rules": rules}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": name},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                             "name": RESTRICTED_USER}]}
    cluster.apply(role, binding, namespace=ns)


def pods(*verbs: str, sub: str = "") -> dict[str, Any]:
    return {"apiGroups": [""], "resources": [f"pods/{sub}" if sub else "pods"], "verbs": list(verbs)}


def as_restricted(cluster: Cluster, command: str, *args: str, input: str | None = None) -> Any:
    return cluster.dd(command, "--context", RESTRICTED, *args, input=input)


def test_rbac_refusal_names_the_missing_verb_and_the_right_check(cluster: Cluster, ns: str) -> None:
    cluster.apply(pod("api", cluster.images["static"]), namespace=ns)
    cluster.wait_ready("api", ns)
    grant(cluster, ns, [pods("get", "list", "watch")])
    ran = as_restricted(cluster, "exec", "pod/api", "-n", ns, "--", "true")
    assert ran.code == 125 and "Traceback" not in ran.err
    assert 'cannot patch resource "pods/ephemeralcontainers"' in ran.err
    assert "kubectl auth can-i patch pods --subresource=ephemeralcontainers" in ran.err
    doctor = as_restricted(cluster, "doctor", "pod/api", "-n", ns, "-o", "json")
    assert doctor.code == 1
    checks = {c["name"]: c for c in json.loads(doctor.out)["checks"]}
    assert checks["get pods"]["ok"] and not checks["patch pods/ephemeralcontainers"]["ok"]


@pytest.mark.parametrize("level", ["baseline", "restricted"])
def test_pod_security_level_from_real_namespace_labels(cluster: Cluster, ns_factory: Any,
                                                       level: str) -> None:
    ns = ns_factory({"pod-security.kubernetes.io/enforce": level})
    cluster.apply(pod("api", cluster.images["nonroot"], user=65532, restricted=True), namespace=ns)
    cluster.wait_ready("api", ns)
    refused = cluster.dd("exec", "pod/api", "-n", ns, "--profile", "general", "--", "true")
    assert refused.code == 2 and f"enforces Pod Security '{level}'" in refused.err
    ran = cluster.dd("exec", "pod/api", "-n", ns, "--", "id", "-u")  # auto picks what passes
    assert ran.code == 0, ran.err
    assert ran.out.strip() == "65532"


def test_auto_retries_with_the_levels_profile_when_it_guessed_wrong(cluster: Cluster,
                                                                    ns_factory: Any) -> None:
    """Issue 10, item 9: a level auto cannot see (here: a user who may not read namespaces, as
    with a cluster-wide admission default) made it pick `general` and stop at the 403."""
    ns = ns_factory({"pod-security.kubernetes.io/enforce": "baseline"})
    cluster.apply(pod("api", cluster.images["static"]), namespace=ns)  # root, uid not in the spec
    cluster.wait_ready("api", ns)
    grant(cluster, ns, [pods("get", "list", "watch"), pods("patch", sub="ephemeralcontainers"),
                        pods("get", "create", sub="exec")])
    ran = as_restricted(cluster, "exec", "pod/api", "-n", ns, "--", "sh", "-c", "id -u; ls /app")
    assert ran.code == 0, ran.err
    assert ran.out.split() == ["0", "/app"]  # baseline: root with default caps reads the root
    (debugger,) = cluster.get("pod", "api", ns)["spec"]["ephemeralContainers"]
    assert "securityContext" not in debugger


def test_pod_whose_own_containers_break_the_level_points_at_copy(cluster: Cluster,
                                                                 ns_factory: Any) -> None:
    ns = ns_factory()
    cluster.apply(pod("old", cluster.images["static"]), namespace=ns)  # root, default caps
    cluster.wait_ready("old", ns)
    cluster.kubectl("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
    ran = cluster.dd("exec", "pod/old", "-n", ns, "--", "true")
    assert ran.code == 125
    assert "--copy" in ran.err and "own containers (app)" in ran.err, ran.err


def test_privileged_on_a_non_root_target_is_accepted_by_the_api_server(cluster: Cluster,
                                                                       ns: str) -> None:
    """Issue 10, item 5: privileged with allowPrivilegeEscalation: false was a 422."""
    cluster.apply(pod("api", cluster.images["nonroot"], user=65532), namespace=ns)
    cluster.wait_ready("api", ns)
    ran = cluster.dd("exec", "pod/api", "-n", ns, "--privileged", "--user", "0", "--", "id", "-u")
    assert "allowPrivilegeEscalation" not in ran.err, ran.err
    assert ran.code == 0, ran.err
    assert ran.out.strip() == "0"


def test_user_zero_in_a_run_as_non_root_pod_starts(cluster: Cluster, ns: str) -> None:
    """Issue 10, item 5: runAsNonRoot stayed true for --user 0 and the debugger never started."""
    cluster.apply(pod("api", cluster.images["nonroot"], user=65532), namespace=ns)
    cluster.wait_ready("api", ns)
    ran = cluster.dd("exec", "pod/api", "-n", ns, "--user", "0", "--profile", "general", "--",
                     "sh", "-c", "id -u; ls /app", timeout=120)
    assert ran.code == 0, ran.err
    assert ran.out.split() == ["0", "/app"]


def test_cleanup_refused_does_not_hide_the_sessions_status(cluster: Cluster, ns: str) -> None:
    """Issue 10, item 11: a 403 on deleting our copy replaced the command's exit status."""
    cluster.apply(pod("api", cluster.images["static"]), namespace=ns)
    cluster.wait_ready("api", ns)
    grant(cluster, ns, [pods("get", "list", "watch", "create"),
                        pods("get", "create", sub="attach"), pods("get", sub="log")])
    ran = as_restricted(cluster, "exec", "pod/api", "-n", ns, "--copy", "--", "sh", "-c", "exit 3")
    assert ran.code == 3, ran.err
    assert "could not delete pod" in ran.err and "kubectl delete pod" in ran.err
    cluster.kubectl("delete", "pods", "-n", ns, "-l", "io.distrodebug.tool=distrodebug",
                    "--grace-period=0")


def test_pod_deleted_mid_session_says_kubectl_not_docker(cluster: Cluster, ns: str) -> None:
    """Issue 10, item 14."""
    cluster.apply(pod("api", cluster.images["static"]), namespace=ns)
    cluster.wait_ready("api", ns)
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "distrodebug", "exec", "pod/api", "-n", ns, "--", "sleep", "60"],
        env={**cluster.env, "DISTRODEBUG_IMAGE": cluster.images["toolbox"]},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not cluster.get("pod", "api", ns)["spec"].get("ephemeralContainers"):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    time.sleep(3)
    cluster.kubectl("delete", "pod", "api", "-n", ns, "--grace-period=0", "--force")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "docker" not in err.lower() and "kubectl" in err, err


def test_mirror_pod_is_explained(cluster: Cluster, ns: str) -> None:
    """Issue 10, item 14: static pods cannot get ephemeral containers; say so and what to do."""
    name = f"static-{ns}"
    manifest = pod(name, cluster.images["static"])
    manifest["metadata"]["namespace"] = ns
    hidden = MANIFESTS / f".{name}.json"
    hidden.write_text(json.dumps(manifest))
    os.rename(hidden, MANIFESTS / f"{name}.json")
    try:
        mirror = f"{name}-{NODE}"
        deadline = time.monotonic() + 60
        while cluster.kubectl("get", "pod", mirror, "-n", ns, check=False).code != 0:
            assert time.monotonic() < deadline, "the kubelet made no mirror pod"
            time.sleep(1)
        cluster.wait_ready(mirror, ns)
        ran = cluster.dd("exec", f"pod/{mirror}", "-n", ns, "--", "true")
        assert ran.code == 125 and "static (mirror) pod" in ran.err, ran.err
        assert "Traceback" not in ran.err and "a bug" not in ran.err
    finally:
        (MANIFESTS / f"{name}.json").unlink(missing_ok=True)


def test_debugger_that_exits_at_once_is_reported(cluster: Cluster, ns: str, engine: Any,
                                                 tmp_path: Path) -> None:
    """Issue 10, item 14: an image of another architecture ("exec format error")."""
    import io
    import tarfile

    from tests.fixtures.cluster import load

    alien = b"\x7fELF\x02\x01\x01" + b"\0" * 9 + (183).to_bytes(2, "little") + b"\0" * 200
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path in ("bin/sh", "usr/local/bin/distrodebug-reaper"):
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(alien), 0o755
            tar.addfile(info, io.BytesIO(alien))
    buf.seek(0)
    engine.api.import_image_from_data(buf.read(), repository="distrodebug-test/arm64-only",
                                      tag="1")
    try:
        load(["distrodebug-test/arm64-only:1"])
    finally:  # containerd keeps its copy; each import left the engine one more untagged image
        engine.images.remove("distrodebug-test/arm64-only:1", force=True)
    cluster.apply(pod("api", cluster.images["static"]), namespace=ns)
    cluster.wait_ready("api", ns)
    ran = cluster.dd("exec", "pod/api", "-n", ns, "--image", "distrodebug-test/arm64-only:1",
                     "--timeout", "60", "--", "true", timeout=90)
    assert ran.code == 125
    assert "exited at once" in ran.err or "cannot start" in ran.err, ran.err
    assert "exec format error" in ran.err or "StartError" in ran.err or "RunContainerError" in ran.err


def test_mistyped_context_is_named_not_replaced(cluster: Cluster) -> None:
    """Issue 10, item 13: a wrong --context fell back silently (or to in-cluster config)."""
    ran = cluster.dd("exec", "pod/api", "--context", "no-such-context", "--", "true")
    assert ran.code == 2, ran.err
    assert "no-such-context" in ran.err and "distrodebug-restricted" in ran.err


def test_failing_credential_plugin_is_not_called_rbac(cluster: Cluster, tmp_path: Path) -> None:
    """Issue 10, item 13."""
    config = json.loads(cluster.kubectl("config", "view", "--raw", "-o", "json").out)
    config["users"] = [{"name": "plugin", "user": {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1", "command": "sh",
        "args": ["-c", "echo token service unavailable >&2; exit 1"],
        "interactiveMode": "Never"}}}]
    config["contexts"] = [{"name": "plugin", "context": {"cluster": "distrodebug", "user": "plugin"}}]
    config["current-context"] = "plugin"
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(config))
    ran = cluster.dd("exec", "pod/api", "--", "true", env={"KUBECONFIG": str(path)})
    assert ran.code == 125
    assert "RBAC" not in ran.err and "credential" in ran.err.lower(), ran.err


def test_socks_proxy_url_is_explained_and_nothing_is_added(cluster: Cluster, ns: str,
                                                          tmp_path: Path) -> None:
    """Issue 10, item 13: a socks5 proxy-url ended in a traceback (the client needs PySocks for
    REST), and where REST went through, the WebSocket to the debugger could not."""
    cluster.apply(pod("api", cluster.images["static"]), namespace=ns)
    cluster.wait_ready("api", ns)
    config = json.loads(cluster.kubectl("config", "view", "--raw", "-o", "json").out)
    for item in config["clusters"]:
        item["cluster"]["proxy-url"] = "socks5://127.0.0.1:1080"
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(config))
    ran = cluster.dd("exec", "pod/api", "-n", ns, "--", "true", env={"KUBECONFIG": str(path)})
    assert ran.code == 125 and "Traceback" not in ran.err, ran.err
    assert "socks5://" in ran.err and "SOCKS proxy" in ran.err and "http://" in ran.err, ran.err
    assert not cluster.get("pod", "api", ns)["spec"].get("ephemeralContainers")


def test_doctor_on_1_34_calls_create_on_exec_optional_and_exec_works_without(
        cluster: Cluster, ns: str) -> None:
    """Issue 10, item 12, the side this cluster can show: before 1.35 a WebSocket exec needs
    only `get` on pods/exec, so doctor must not fail for a missing `create` (from 1.35 it does:
    tests/unit/test_doctor.py)."""
    cluster.apply(pod("api", cluster.images["static"]), namespace=ns)
    cluster.wait_ready("api", ns)
    grant(cluster, ns, [pods("get", "list", "watch"), pods("patch", sub="ephemeralcontainers"),
                        pods("get", sub="exec"), pods("get", sub="attach")])
    doctor = as_restricted(cluster, "doctor", "pod/api", "-n", ns, "-o", "json")
    report = json.loads(doctor.out)
    checks = {c["name"]: c for c in report["checks"]}
    assert "v1.34" in checks["cluster reachable"]["detail"]
    for sub in ("exec", "attach"):
        assert not checks[f"create pods/{sub}"]["ok"] and not checks[f"create pods/{sub}"]["required"]
    assert doctor.code == 0 and report["ok"], doctor.out
    ran = as_restricted(cluster, "exec", "pod/api", "-n", ns, "--", "ls", "/app")
    assert ran.code == 0 and ran.out.strip() == "/app", ran.err
