"""Real kubectl against the API-server double: the double is faithful where kubectl can tell.

The double reports v1.32.x, so gcloud's kubectl dispatcher (installed here as /usr/bin/kubectl)
runs kubectl 1.32; a plain kubectl binary runs as whatever it is. Expected texts are the ones in
../shared/reference/kubectl/client-*.txt.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pexpect
import pytest
from apiserver import ApiServerDouble

pytestmark = pytest.mark.engine

KUBECTL = shutil.which("kubectl")
FORBIDDEN = ('Error from server (Forbidden): pods "mypod" is forbidden: User "alice" cannot patch '
             'resource "pods/ephemeralcontainers" in API group "" in the namespace "default"')
PSS = ('Error from server (Forbidden): pods "mypod" is forbidden: violates PodSecurity '
       '"baseline:latest": non-default capabilities (container "debugger-xyz" must not include '
       '"SYS_PTRACE" in securityContext.capabilities.add)')
NOSUB = ('error: ephemeral containers are disabled for this cluster (error from server: "the '
         'server could not find the requested resource")')


@dataclass
class Kube:
    double: ApiServerDouble
    image: str
    env: dict[str, str]

    def run(self, *args: str, user: str | None = None, stdin: str | None = None,
            binary: str | None = None) -> subprocess.CompletedProcess[str]:
        env = dict(self.env)
        if user:
            env["KUBECONFIG"] = self.double.kubeconfig_for(user)
        return subprocess.run([binary or KUBECTL or "kubectl", *args], env=env, input=stdin,
                              capture_output=True, text=True, timeout=60)

    def spawn(self, *args: str) -> pexpect.spawn:
        return pexpect.spawn(KUBECTL or "kubectl", list(args), env=self.env, encoding="utf-8",
                             timeout=20, dimensions=(40, 120))

    def app_pod(self, name: str = "mypod", **spec: Any) -> dict[str, Any]:
        """The pod of the captures: distroless-style app as uid 65532, labels, a probe."""
        self.double.create_pod({
            "metadata": {"name": name, "labels": {"app": "demo"}, "annotations": {"a": "b"}},
            "spec": dict({"securityContext": {"runAsNonRoot": True, "runAsUser": 65532},
                          "containers": [{"name": "app", "image": self.image,
                                          "command": ["sleep", "3600"],
                                          "livenessProbe": {"httpGet": {"path": "/healthz",
                                                                        "port": 8080}}}]},
                         **spec)})
        return self.double.wait_for_container(name, "app")


@pytest.fixture
def kube(k8s_double_factory: Callable[..., ApiServerDouble], k8s_busybox_image: str,
         tmp_path: Path) -> Kube:
    if KUBECTL is None:
        if os.environ.get("DISTRODEBUG_REQUIRE_ENGINE") == "1":
            pytest.fail("kubectl is not installed")
        pytest.skip("kubectl is not installed")
    double = k8s_double_factory(version="v1.32.4")
    # a private HOME: kubectl caches discovery under ~/.kube/cache
    env = dict(os.environ, KUBECONFIG=double.kubeconfig, HOME=str(tmp_path))
    return Kube(double, k8s_busybox_image, env)


def test_get_pods_and_auth_can_i(kube: Kube) -> None:
    kube.app_pod()
    listed = kube.run("get", "pods")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split("\n")[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert listed.stdout.split("\n")[1].split()[:4] == ["mypod", "1/1", "Running", "0"]
    assert kube.run("auth", "can-i", "patch", "pods", "--subresource=ephemeralcontainers"
                    ).stdout.strip() == "yes"
    kube.double.deny("patch", "pods", "ephemeralcontainers")
    denied = kube.run("auth", "can-i", "patch", "pods", "--subresource=ephemeralcontainers")
    assert (denied.stdout.strip(), denied.returncode) == ("no", 1)
    # the gotcha of log-cani.txt: this form checks a pod *named* ephemeralcontainers
    assert kube.run("auth", "can-i", "patch", "pods/ephemeralcontainers").stdout.strip() == "yes"


def test_debug_target_shares_the_targets_processes(kube: Kube) -> None:
    kube.app_pod()
    kube.double.clear_requests()
    made = kube.run("debug", "mypod", f"--image={kube.image}", "--target=app",
                    "--profile=general", "-c", "debugger-abcde", "--", "sleep", "30")
    assert made.returncode == 0, made.stderr
    patch = kube.double.requests(method="PATCH")[0]
    assert patch.path == "/api/v1/namespaces/default/pods/mypod/ephemeralcontainers"
    assert patch.headers["Content-Type"] == "application/strategic-merge-patch+json"
    assert patch.json() == {"spec": {"ephemeralContainers": [{
        "command": ["sleep", "30"], "image": kube.image, "name": "debugger-abcde",
        "resources": {}, "securityContext": {"capabilities": {"add": ["SYS_PTRACE"]}},
        "targetContainerName": "app", "terminationMessagePolicy": "File"}]}}
    kube.double.wait_for_container("mypod", "debugger-abcde")
    ps = kube.run("exec", "mypod", "-c", "debugger-abcde", "--", "ps", "-o", "pid,user,args")
    assert ps.returncode == 0, ps.stderr
    assert ps.stdout.split("\n")[1].split() == ["1", "nonroot", "sleep", "3600"]
    root = kube.run("exec", "mypod", "-c", "debugger-abcde", "--", "ls", "/proc/1/root/bin/sleep")
    assert root.stdout.strip() == "/proc/1/root/bin/sleep", root.stderr


def test_debug_interactive_session(kube: Kube) -> None:
    kube.app_pod()
    kube.double.clear_requests()
    child = kube.spawn("debug", "-it", "mypod", f"--image={kube.image}", "--target=app",
                       "--profile=general", "-c", "debugger-tty", "--", "sh")
    child.expect("If you don't see a command prompt, try pressing enter.")
    child.sendline("echo hi-$((40+2))")
    child.expect("hi-42")
    child.sendline("exit 3")
    child.expect("Session ended, the ephemeral container will not be restarted")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    state = kube.double.wait_for_container("mypod", "debugger-tty", "terminated")["state"]
    assert state["terminated"]["exitCode"] == 3
    calls = [(r.method, r.path.rsplit("/", 1)[-1], r.param("watch"), r.status)
             for r in kube.double.requests() if r.path.startswith("/api/v1/namespaces")]
    # GET, PATCH, LIST+WATCH, attach over WebSocket: exactly kubectl's sequence, no SPDY retry
    assert calls == [("GET", "mypod", None, 200), ("PATCH", "ephemeralcontainers", None, 200),
                     ("GET", "pods", None, 200), ("GET", "pods", "true", 200),
                     ("GET", "attach", None, 101)]


def test_attach_interactive(kube: Kube) -> None:
    kube.double.create_pod({"metadata": {"name": "tty"}, "spec": {"containers": [{
        "name": "shell", "image": kube.image, "command": ["sh"], "stdin": True, "tty": True}]}})
    kube.double.wait_for_container("tty", "shell")
    child = kube.spawn("attach", "-it", "tty", "-c", "shell")
    child.expect("If you don't see a command prompt")
    # one round trip first: kubectl sends its resize frames when it connects, and typed input
    # must not overtake them
    child.sendline("echo ready-$((1+1))")
    child.expect("ready-2")
    child.sendline("stty size; echo hi")
    child.expect("40 120")  # the resize channel reached the container's TTY
    child.expect("hi")
    child.sendline("exit 4")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    pod = kube.double.wait_for_pod(  # restartPolicy Always: the shell comes back
        "tty", lambda p: p["status"]["containerStatuses"][0]["restartCount"] == 1)
    assert pod["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"] == 4


def test_exec_exit_codes_and_stdin(kube: Kube) -> None:
    kube.app_pod()
    failed = kube.run("exec", "mypod", "-c", "app", "--", "sh", "-c", "echo out; exit 3")
    assert (failed.returncode, failed.stdout) == (3, "out\n")
    assert failed.stderr.strip() == "command terminated with exit code 3"  # client-exec-fail.txt
    echoed = kube.run("exec", "-i", "mypod", "-c", "app", "--", "cat", stdin="all of it\n")
    assert (echoed.returncode, echoed.stdout) == (0, "all of it\n")
    missing = kube.run("exec", "mypod", "-c", "app", "--", "tar-not-here", "cf", "-")
    assert missing.returncode == 1
    assert "Internal error occurred: error executing command in container" in missing.stderr
    assert 'exec: "tar-not-here": executable file not found in $PATH' in missing.stderr
    child = kube.spawn("exec", "-it", "mypod", "-c", "app", "--", "sh")
    child.sendline("echo hi-$((1+1)); exit 5")
    child.expect("hi-2")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 5


def test_copy_to_and_node_debug_pods(kube: Kube) -> None:
    kube.app_pod()
    kube.double.clear_requests()
    copied = kube.run("debug", "mypod", f"--image={kube.image}", "--copy-to=mypod-debug",
                      "--profile=general", "-c", "debugger", "--", "sleep", "30")
    assert copied.returncode == 0, copied.stderr
    create = kube.double.requests(method="POST")[0]
    assert create.headers["Content-Type"] == "application/vnd.kubernetes.protobuf"
    copy = kube.double.wait_for_container("mypod-debug", "debugger")
    assert copy["state"]["running"]
    spec = kube.double.get_pod("mypod-debug")["spec"]  # type: ignore[index]
    assert spec["shareProcessNamespace"] is True and "livenessProbe" not in spec["containers"][0]
    assert spec["containers"][1]["securityContext"] == {"capabilities": {"add": ["SYS_PTRACE"]}}
    node = kube.run("debug", "node/node-1", f"--image={kube.image}", "--profile=general", "--",
                    "sleep", "30")
    assert node.returncode == 0, node.stderr
    name = node.stdout.split()[3]  # "Creating debugging pod NAME with container debugger ..."
    assert name.startswith("node-debugger-node-1-")
    pod = kube.double.get_pod(name)
    assert pod is not None
    assert (pod["spec"]["hostPID"], pod["spec"]["hostNetwork"], pod["spec"]["nodeName"]) == (
        True, True, "node-1")
    assert pod["spec"]["volumes"][0] == {"name": "host-root", "hostPath": {"path": "/"}}
    kube.double.wait_for_container(name, "debugger")
    host = kube.run("exec", name, "--", "ls", "/host/proc/1/cmdline")
    assert host.stdout.strip() == "/host/proc/1/cmdline", host.stderr


def test_refusals_print_the_captured_texts(kube: Kube) -> None:
    kube.app_pod()
    kube.double.add_user("alice")
    kube.double.deny("patch", "pods", "ephemeralcontainers", user="alice")
    debug = ("debug", "mypod", f"--image={kube.image}", "--target=app", "--profile=general")
    rbac = kube.run(*debug, "--", "sleep", "1", user="alice")
    assert rbac.returncode == 1 and FORBIDDEN in rbac.stderr.splitlines()
    kube.double.label_namespace("default", {"pod-security.kubernetes.io/enforce": "baseline"})
    pss = kube.run(*debug, "-c", "debugger-xyz", "--", "sleep", "1")
    assert pss.returncode == 1 and PSS in pss.stderr.splitlines()
    kube.double.label_namespace("default", {"pod-security.kubernetes.io/enforce": None})
    kube.double.ephemeral_containers = False
    nosub = kube.run(*debug, "--", "sleep", "1")
    assert nosub.returncode == 1 and NOSUB in nosub.stderr.splitlines()
    assert "ephemeralContainers" not in (kube.double.get_pod("mypod") or {})["spec"]


def test_second_debugger_keeps_the_first(kube: Kube) -> None:
    kube.app_pod()
    for name in ("debugger-one", "debugger-two"):
        made = kube.run("debug", "mypod", f"--image={kube.image}", "--target=app", "-c", name,
                        "--profile=baseline", "--", "sleep", "30")
        assert made.returncode == 0, made.stderr
    second = kube.double.requests(method="PATCH")[-1].json()
    assert second["spec"]["$setElementOrder/ephemeralContainers"] == [
        {"name": "debugger-one"}, {"name": "debugger-two"}]  # as in log-eph-second.txt
    pod = kube.double.wait_for_pod("mypod", lambda p: len(
        p["status"].get("ephemeralContainerStatuses", [])) == 2)
    assert [c["name"] for c in pod["spec"]["ephemeralContainers"]] == [
        "debugger-one", "debugger-two"]


def _versioned_kubectls() -> list[str]:
    if KUBECTL is None:
        return []
    folder = Path(os.path.realpath(KUBECTL)).parent
    return sorted(str(p) for p in folder.glob("kubectl.1.*") if p.name >= "kubectl.1.29")


@pytest.mark.parametrize("binary", _versioned_kubectls() or [None])
def test_exec_with_each_kubectl_version(kube: Kube, binary: str | None) -> None:
    if binary is None:
        pytest.skip("no versioned kubectl binaries next to kubectl")
    kube.app_pod()
    result = kube.run("exec", "mypod", "--", "sh", "-c", "exit 3", binary=binary)
    if binary.endswith("kubectl.1.29"):
        # 1.29 speaks SPDY only (WebSocket was opt-in): the double refuses it, clearly
        assert "does not speak SPDY" in result.stderr
        with_ws = dict(kube.env, KUBECTL_REMOTE_COMMAND_WEBSOCKETS="true")
        result = subprocess.run([binary, "exec", "mypod", "--", "sh", "-c", "exit 3"],
                                env=with_ws, capture_output=True, text=True, timeout=60)
    assert result.returncode == 3, result.stderr
