"""Crash-looping pods through a copy, and node debugging pods, on the API-server double."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import pexpect
import pytest
from test_k8s_sessions import PROMPT, run_dd

pytestmark = [pytest.mark.engine]


@pytest.fixture
def crashing_pod(k8s_double: Any, python_image: str) -> str:
    k8s_double.create_pod({"metadata": {"name": "crash", "labels": {"app": "crash"}}, "spec": {
        "securityContext": {"runAsUser": 65532, "runAsNonRoot": True},
        "containers": [{"name": "app", "image": python_image, "imagePullPolicy": "Never",
                        "command": ["/usr/bin/python3.11", "-c", "raise SystemExit(3)"],
                        "livenessProbe": {"exec": {"command": ["true"]}}}]}})

    def crash_looping(pod: dict[str, Any]) -> bool:
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        return any(s.get("restartCount", 0) >= 1 for s in statuses)

    k8s_double.wait_for_pod("crash", crash_looping, timeout=60)
    return "crash"


def our_pods(double: Any) -> list[str]:
    pods = double.call(lambda: [p for p in double.store.list("pods", "default")])
    return [p["metadata"]["name"] for p in pods
            if (p["metadata"].get("labels") or {}).get("io.distrodebug.tool") == "distrodebug"]


def test_crash_looping_pod_needs_and_gets_a_copy(k8s_double: Any, crashing_pod: str,
                                                 toolbox: str) -> None:
    ran = run_dd(k8s_double, toolbox, "exec", "pod/crash", "--", "true")
    assert ran.returncode == 125 and "--copy" in ran.stderr
    ran = run_dd(k8s_double, toolbox, "exec", "--copy", "pod/crash", "--", "sh", "-c",
                 "id -u; ls /app; cat /proc/1/cmdline | tr '\\0' ' '")
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[0] == "65532" and "app.py" in lines[1]
    original = k8s_double.get_pod("crash")
    assert not original["spec"].get("ephemeralContainers")
    deadline = time.time() + 30
    while time.time() < deadline and our_pods(k8s_double):
        time.sleep(0.3)
    assert our_pods(k8s_double) == []


def test_interactive_copy_with_keep(k8s_double: Any, crashing_pod: str, toolbox: str) -> None:
    env = {**os.environ, "KUBECONFIG": k8s_double.kubeconfig, "DISTRODEBUG_IMAGE": toolbox,
           "TERM": "xterm"}
    child = pexpect.spawn(sys.executable, ["-m", "distrodebug", "shell", "--copy", "--keep",
                                           "pod/crash"], env=env, encoding="utf-8", timeout=60)
    child.expect("copy of the pod")
    child.expect(PROMPT)
    child.sendline("ls /app")
    child.expect("app.py")
    child.sendline("exit 2")
    child.expect("kept pod")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 2
    kept = our_pods(k8s_double)
    assert len(kept) == 1
    copy = k8s_double.get_pod(kept[0])
    assert copy["metadata"]["annotations"]["io.distrodebug.cp-of"] == "crash"
    assert "app" not in copy["metadata"]["labels"]
    assert "livenessProbe" not in copy["spec"]["containers"][0]
    ran = run_dd(k8s_double, toolbox, "cleanup", "--kubernetes", "--all")
    assert ran.returncode == 0, ran.stderr
    k8s_double.wait_for_deletion(kept[0])


def test_node_debugging_pod(k8s_double: Any, toolbox: str) -> None:
    ran = run_dd(k8s_double, toolbox, "exec", "node/node-1", "--", "sh", "-c",
                 "ls /host/etc/os-release && echo PWD=$PWD")
    assert ran.returncode == 0, ran.stderr
    assert "/host/etc/os-release" in ran.stdout and "PWD=/host" in ran.stdout
    deadline = time.time() + 30
    while time.time() < deadline and our_pods(k8s_double):
        time.sleep(0.3)
    assert our_pods(k8s_double) == []
    ran = run_dd(k8s_double, toolbox, "exec", "node/no-such-node", "--", "true")
    assert ran.returncode == 125 and "Traceback" not in ran.stderr


def test_refusals_leave_nothing_behind(k8s_double: Any, crashing_pod: str, toolbox: str) -> None:
    k8s_double.deny("create", "pods")
    ran = run_dd(k8s_double, toolbox, "exec", "--copy", "pod/crash", "--", "true")
    assert ran.returncode == 125 and "create" in ran.stderr and "Traceback" not in ran.stderr
    assert our_pods(k8s_double) == []


def test_pod_security_refuses_node_pod_cleanly(k8s_double: Any, toolbox: str) -> None:
    k8s_double.label_namespace("default", {"pod-security.kubernetes.io/enforce": "baseline"})
    ran = run_dd(k8s_double, toolbox, "exec", "node/node-1", "--", "true")
    assert ran.returncode == 125 and "Pod Security" in ran.stderr and "baseline" in ran.stderr
    assert our_pods(k8s_double) == []
    ran = run_dd(k8s_double, toolbox, "exec", "--profile", "baseline", "node/node-1", "--", "id", "-u")
    assert ran.returncode == 0, ran.stderr


def test_copy_with_set_image(k8s_double: Any, crashing_pod: str, toolbox: str) -> None:
    ran = run_dd(k8s_double, toolbox, "exec", "--set-image", f"app={toolbox}", "pod/crash", "--",
                 "sh", "-c", "ls /bin/busybox && ls /app 2>&1 || true")
    assert ran.returncode == 0, ran.stderr
    assert "/bin/busybox" in ran.stdout and "No such file" in ran.stdout  # the app's files are gone
    assert run_dd(k8s_double, toolbox, "exec", "--set-image", "nonsense", "pod/crash", "--",
                  "true").returncode == 2
