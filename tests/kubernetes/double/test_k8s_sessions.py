"""distrodebug against the API-server double: ephemeral debuggers on pods that really run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import pexpect
import pytest

pytestmark = [pytest.mark.engine]
PROMPT = r"\[distrodebug [^\]]+\] \S+ [#$] "


def run_dd(double: Any, toolbox: str, *args: str, input: str | None = None,
           kubeconfig: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": kubeconfig or double.kubeconfig, "DISTRODEBUG_IMAGE": toolbox}
    return subprocess.run([sys.executable, "-m", "distrodebug", *args], capture_output=True,
                          text=True, env=env, timeout=120, input=input,
                          stdin=None if input is not None else subprocess.DEVNULL)


@pytest.fixture
def app_pod(k8s_double: Any, static_nonroot_image: str) -> str:
    k8s_double.create_pod({"metadata": {"name": "api", "labels": {"app": "api"}}, "spec": {
        "containers": [{"name": "app", "image": static_nonroot_image, "imagePullPolicy": "Never"}]}})
    k8s_double.wait_for_container("api", "app")
    return "api"


def ephemeral(double: Any, pod: str = "api") -> list[dict[str, Any]]:
    return list(double.get_pod(pod)["spec"].get("ephemeralContainers") or [])


def test_exec_sees_target_and_returns_exit_code(k8s_double: Any, app_pod: str, toolbox: str) -> None:
    ran = run_dd(k8s_double, toolbox, "exec", "pod/api", "--", "ps", "-o", "pid,user,args")
    assert ran.returncode == 0, ran.stderr
    assert any(line.split() == ["1", "nonroot", "/app"] for line in ran.stdout.splitlines())
    ran = run_dd(k8s_double, toolbox, "exec", "pod/api", "--", "sh", "-c",
                 "ls /app; cat; echo err >&2; exit 3", input="from stdin\n")
    assert ran.returncode == 3
    assert ran.stdout.splitlines() == ["/app", "from stdin"] or "from stdin" in ran.stdout
    assert "err" in ran.stderr
    # The second exec reused the first debugger instead of adding another ephemeral container.
    assert len(ephemeral(k8s_double)) == 1
    patches = k8s_double.requests(method="PATCH")
    assert len(patches) == 1


def test_interactive_shell(k8s_double: Any, app_pod: str, toolbox: str) -> None:
    env = {**os.environ, "KUBECONFIG": k8s_double.kubeconfig, "DISTRODEBUG_IMAGE": toolbox,
           "TERM": "xterm"}
    k8s_double.clear_requests()
    child = pexpect.spawn(sys.executable, ["-m", "distrodebug", "shell", "pod/api"], env=env,
                          encoding="utf-8", timeout=60, dimensions=(30, 100))
    child.expect("distrodebug: api")
    child.expect(PROMPT)
    child.sendline("ps -o pid,args | grep -c '^ *1 /ap[p]'")
    child.expect(r"\r\n1\r\n")
    child.setwinsize(42, 132)
    time.sleep(0.5)
    child.sendline("stty size")
    child.expect("42 132")
    child.sendline("sleep 100")
    time.sleep(0.5)
    child.sendcontrol("c")
    child.expect(PROMPT)
    child.sendline("exit 5")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 5
    methods = [(r.method, r.path.rsplit("/", 1)[-1]) for r in k8s_double.requests()]
    assert methods.count(("PATCH", "ephemeralcontainers")) == 1
    assert len(methods) <= 6, methods
    debugger = ephemeral(k8s_double)[0]
    assert debugger["stdin"] and debugger["stdinOnce"] and debugger["tty"]
    state = k8s_double.wait_for_container("api", debugger["name"], state="terminated")
    assert state is not None


def test_unknown_pod_and_container(k8s_double: Any, app_pod: str, toolbox: str) -> None:
    ran = run_dd(k8s_double, toolbox, "exec", "pod/nope", "--", "true")
    assert ran.returncode == 125 and "Traceback" not in ran.stderr
    assert 'pods "nope" not found' in ran.stderr.lower() or "not found" in ran.stderr
    ran = run_dd(k8s_double, toolbox, "exec", "pod/api", "-c", "nope", "--", "true")
    assert ran.returncode == 125 and "no container 'nope'" in ran.stderr


def test_rbac_refusal_names_the_permission(k8s_double: Any, app_pod: str, toolbox: str) -> None:
    k8s_double.deny("patch", "pods", subresource="ephemeralcontainers")
    ran = run_dd(k8s_double, toolbox, "exec", "pod/api", "--", "true")
    assert ran.returncode == 125, ran.stderr
    assert "pods/ephemeralcontainers" in ran.stderr and "--subresource=ephemeralcontainers" in ran.stderr
    assert ephemeral(k8s_double) == []


def test_pod_security_refusal_suggests_a_profile(k8s_double: Any, static_nonroot_image: str,
                                                 toolbox: str) -> None:
    k8s_double.create_namespace("locked", {"pod-security.kubernetes.io/enforce": "baseline"})
    k8s_double.create_pod({"metadata": {"name": "api"}, "spec": {"containers": [
        {"name": "app", "image": static_nonroot_image, "imagePullPolicy": "Never"}]}},
        namespace="locked")
    k8s_double.wait_for_container("api", "app", namespace="locked")
    ran = run_dd(k8s_double, toolbox, "exec", "-n", "locked", "--profile", "general", "pod/api",
                 "--", "true")
    assert ran.returncode == 2 and "baseline" in ran.stderr  # refused before anything is sent
    ran = run_dd(k8s_double, toolbox, "exec", "-n", "locked", "pod/api", "--", "id", "-u")
    assert ran.returncode == 0, ran.stderr  # auto picks what baseline admits


def test_image_pull_failure_ends_the_wait(k8s_double: Any, app_pod: str, toolbox: str) -> None:
    start = time.monotonic()
    ran = run_dd(k8s_double, "registry.invalid/nothing:1", "exec", "pod/api", "--", "true")
    assert ran.returncode == 125
    assert "cannot start" in ran.stderr and ("ErrImagePull" in ran.stderr or "ImagePullBackOff"
                                             in ran.stderr)
    assert time.monotonic() - start < 60


def test_no_ephemeral_support(k8s_double: Any, app_pod: str, toolbox: str) -> None:
    k8s_double.ephemeral_containers = False
    ran = run_dd(k8s_double, toolbox, "exec", "pod/api", "--", "true")
    assert ran.returncode == 125
    assert "disabled for this cluster" in ran.stderr and "--copy" in ran.stderr


def test_deployment_target(k8s_double: Any, app_pod: str, toolbox: str) -> None:
    k8s_double.create_object("deployments", {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api"},
        "spec": {"selector": {"matchLabels": {"app": "api"}},
                 "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": []}}}})
    ran = run_dd(k8s_double, toolbox, "exec", "deploy/api", "--", "cat", "/proc/1/cmdline")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("/app")


def test_unreachable_api(tmp_path: Any, toolbox: str) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "x",
        "clusters": [{"name": "x", "cluster": {"server": "http://127.0.0.1:9"}}],
        "users": [{"name": "x", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "x", "user": "x"}}]}))
    env = {**os.environ, "KUBECONFIG": str(config), "DISTRODEBUG_IMAGE": toolbox}
    ran = subprocess.run([sys.executable, "-m", "distrodebug", "exec", "pod/api", "--", "true"],
                         capture_output=True, text=True, env=env, timeout=60,
                         stdin=subprocess.DEVNULL)
    assert ran.returncode == 125 and "cannot be reached" in ran.stderr
    assert "Traceback" not in ran.stderr


def test_expired_credentials(k8s_double: Any, app_pod: str, toolbox: str) -> None:
    k8s_double.revoke()
    ran = run_dd(k8s_double, toolbox, "exec", "pod/api", "--", "true")
    assert ran.returncode == 125 and "credentials" in ran.stderr and "Traceback" not in ran.stderr


def test_reuse_attaches_to_the_idle_debugger(k8s_double: Any, app_pod: str, toolbox: str) -> None:
    assert run_dd(k8s_double, toolbox, "exec", "pod/api", "--", "true").returncode == 0
    env = {**os.environ, "KUBECONFIG": k8s_double.kubeconfig, "DISTRODEBUG_IMAGE": toolbox}
    child = pexpect.spawn(sys.executable, ["-m", "distrodebug", "shell", "--reuse", "pod/api"],
                          env=env, encoding="utf-8", timeout=60, dimensions=(30, 100))
    child.expect(PROMPT)
    child.sendline("exit 4")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 4
    assert len(ephemeral(k8s_double)) == 1  # no second debugger


def test_kubectl_plugin_entry_point(k8s_double: Any, app_pod: str, toolbox: str,
                                    tmp_path: Any) -> None:
    import shutil

    plugin = shutil.which("kubectl-distrodebug")
    kubectl = shutil.which("kubectl")
    if not plugin or not kubectl:
        pytest.skip("kubectl or the installed plugin script is not on PATH")
    env = {**os.environ, "KUBECONFIG": k8s_double.kubeconfig, "DISTRODEBUG_IMAGE": toolbox}
    ran = subprocess.run([kubectl, "distrodebug", "exec", "pod/api", "--", "cat", "/proc/1/cmdline"],
                         capture_output=True, text=True, env=env, timeout=120,
                         stdin=subprocess.DEVNULL)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("/app")
