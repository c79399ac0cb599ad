"""shell and exec on the real cluster: ephemeral debuggers in real pods, the kubelet's own answers."""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path
from typing import Any

import pexpect
import pytest
from kubernetes.config import kube_config

from distrodebug import session as flow
from distrodebug.cli.console import UI
from distrodebug.cli.words import debug_options, resolve
from distrodebug.errors import SidecarFailed
from distrodebug.runtimes.kubernetes.client import KubeClient
from distrodebug.runtimes.kubernetes.runtime import KubernetesRuntime
from distrodebug.settings import load_settings
from distrodebug.sidecar import EXIT_MARK
from tests.fixtures.cluster import REQUEST_LOG, Cluster, pod

PROMPT = r"\[distrodebug [^\]]+\] \S+ [#$] "


def ephemeral(cluster: Cluster, name: str, ns: str) -> list[dict[str, Any]]:
    return list(cluster.get("pod", name, ns)["spec"].get("ephemeralContainers") or [])


def start(cluster: Cluster, ns: str, *manifests: dict[str, Any]) -> None:
    cluster.apply(*manifests, namespace=ns)
    for manifest in manifests:
        cluster.wait_ready(manifest["metadata"]["name"], ns)


def test_interactive_shell_in_a_pty(cluster: Cluster, ns: str) -> None:
    start(cluster, ns, pod("api", cluster.images["nonroot"], user=65532, read_only=True))
    child = pexpect.spawn(sys.executable, ["-m", "distrodebug", "shell", "pod/api", "-n", ns],
                          env=cluster.dd_env(), encoding="utf-8", timeout=90, dimensions=(30, 100))
    transcript = io.StringIO()
    child.logfile_read = transcript
    child.expect("distrodebug: api")
    child.expect(PROMPT)
    # The app is there (its own PID namespace is shared), and its files are at $DISTRODEBUG_ROOT.
    child.sendline("ps -o pid,user,args | grep -c '[/]app$'")
    child.expect(r"\r\n1\r\n")
    child.sendline('ls "$DISTRODEBUG_ROOT/app" && echo listed')
    child.expect(r"/app\r\nlisted")
    child.setwinsize(42, 132)
    time.sleep(1)
    child.sendline("stty size")
    child.expect("42 132")
    child.sendline("sleep 100")
    time.sleep(1)
    child.sendcontrol("c")
    child.expect(PROMPT)
    child.sendline("exit 5")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 5
    assert "distrodebug-exit" not in transcript.getvalue()  # the status came as a mark, unseen
    (debugger,) = ephemeral(cluster, "api", ns)
    assert debugger["stdin"] and debugger["stdinOnce"] and debugger["tty"]
    # Same uid as the target, every capability dropped: reads its root with no SYS_PTRACE.
    assert debugger["securityContext"]["runAsUser"] == 65532
    assert debugger["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def shell_requests(cluster: Cluster, ns: str, log: Path, *args: str) -> tuple[int, bytes, list[str]]:
    """One real shell session ending in `exit 7`: its status, all it wrote, its API requests."""
    child = pexpect.spawn(sys.executable, ["-c", REQUEST_LOG, str(log), "shell", *args, "-n", ns],
                          env=cluster.dd_env(), timeout=90, dimensions=(30, 100))
    transcript = io.BytesIO()
    child.logfile_read = transcript
    child.expect(PROMPT.encode())
    child.sendline("echo $((3 + 4))ok")
    child.expect(b"\r\n7ok\r\n")
    child.sendline("exit 7")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus is not None, child.signalstatus
    return child.exitstatus, transcript.getvalue(), log.read_text().splitlines()


@pytest.mark.parametrize("mark", [True, False], ids=["mark", "no-mark"])
def test_a_shell_reads_its_exit_status_from_its_mark_with_kubectls_request_count(
        cluster: Cluster, ns: str, tmp_path: Path, mark: bool) -> None:
    """Issue 9, item 6: 6 requests to kubectl debug's 5, the last a watch for the exit status.

    The entry script now prints its status last as an escape sequence (sidecar.EXIT_MARK) that
    the attach stream takes out. Without it (DD_MARK=0 stands for an older debugger) the status
    is read from the pod, as before. A root target: the chroot branch of the script (the test
    above covers the other).
    """
    start(cluster, ns, pod("api", cluster.images["static"]))
    extra = () if mark else ("--env", "DD_MARK=0")
    code, seen, requests = shell_requests(cluster, ns, tmp_path / "requests", "pod/api", *extra)
    assert code == 7
    assert b"distrodebug-exit" not in seen and EXIT_MARK[:2] not in seen, seen[-200:]
    methods = [line.split()[0] for line in requests]
    # GET the pod, PATCH the debugger in, WATCH until it runs, attach, POST the pod's Event.
    attached = methods.index("WEBSOCKET")
    assert methods[:attached] == ["GET", "PATCH", "GET"], requests
    assert "watch=" in requests[2] and "ephemeralcontainers" in requests[1], requests
    after = requests[attached + 1:]
    assert [line.split()[0] for line in after if "/events" in line] == ["POST"], requests
    if mark:
        assert len(requests) == 5, requests  # kubectl debug -it sends 5 (benchmarks/k8s_shell.py)
        assert not any(line.startswith("GET") for line in after), requests
    else:
        assert len(requests) == 6 and any("watch=" in line for line in after), requests


def test_exec_exit_code_stdin_stderr_and_one_debugger_for_repeated_calls(cluster: Cluster,
                                                                          ns: str) -> None:
    start(cluster, ns, pod("api", cluster.images["static"]))
    ran = cluster.dd("exec", "pod/api", "-n", ns, "--", "ps", "-o", "pid,user,args")
    assert ran.code == 0, ran.err
    assert any(line.split() == ["1", "root", "/app"] for line in ran.out.splitlines()), ran.out
    ran = cluster.dd("exec", "pod/api", "-n", ns, "--", "sh", "-c",
                     "ls /app; cat; echo err >&2; exit 3", input="from stdin\n")
    assert ran.code == 3, ran.err
    assert ran.out.splitlines() == ["/app", "from stdin"]
    assert "err" in ran.err
    assert len(ephemeral(cluster, "api", ns)) == 1  # the second exec reused the first debugger


def test_exec_debugger_is_never_reused_for_another_container(cluster: Cluster, ns: str) -> None:
    """Issue 10, item 2: a debugger made for `app` ran `-c sidecar`'s commands in app's view."""
    sidecar = {"name": "sidecar", "image": cluster.images["python"], "imagePullPolicy": "Never",
               "command": ["/usr/bin/python3.11", "-c", "import time; time.sleep(100000)"]}
    start(cluster, ns, pod("two", cluster.images["static"], extra_containers=[sidecar]))
    first = cluster.dd("exec", "pod/two", "-n", ns, "-c", "app", "--", "ls", "/")
    assert first.code == 0, first.err
    second = cluster.dd("exec", "pod/two", "-n", ns, "-c", "sidecar", "--", "ls", "/usr/bin")
    assert second.code == 0, second.err
    assert "python3.11" in second.out.split()
    targets = sorted(c["targetContainerName"] for c in ephemeral(cluster, "two", ns))
    assert targets == ["app", "sidecar"]


def test_shared_process_namespace_finds_the_app_not_pause(cluster: Cluster, ns: str) -> None:
    """Issue 10, item 3: with shareProcessNamespace PID 1 is pause, and the root was pause's."""
    start(cluster, ns, pod("shared", cluster.images["static"], shareProcessNamespace=True))
    ran = cluster.dd("exec", "pod/shared", "-n", ns, "--", "sh", "-c",
                     "ls /; cat /proc/1/cmdline | tr '\\0' ' '")
    assert ran.code == 0, ran.err
    assert "app" in ran.out.split(), ran.out  # the app's root, which holds /app
    assert "pause" in ran.out  # PID 1 is indeed the sandbox's pause


def test_host_pid_pod_never_lands_in_the_nodes_root(cluster: Cluster, ns: str) -> None:
    """Issue 10, item 3: with hostPID PID 1 is the node's init; a chroot there is the node."""
    start(cluster, ns, pod("hostpid", cluster.images["static"], hostPID=True))
    ran = cluster.dd("exec", "pod/hostpid", "-n", ns, "--", "sh", "-c",
                     "test -e /app && ! test -e /var/lib/distrodebug-cluster && echo app-root")
    assert ran.code == 0, (ran.out, ran.err)
    assert ran.out.strip() == "app-root"


def test_distroless_python_without_a_shell(cluster: Cluster, ns: str) -> None:
    start(cluster, ns, pod("py", cluster.images["python"], user=65532))
    ran = cluster.dd("exec", "pod/py", "-n", ns, "--", "sh", "-c",
                     'ls "$DISTRODEBUG_ROOT/bin/sh" 2>&1; ls "$DISTRODEBUG_ROOT/usr/bin"')
    assert ran.code == 0, ran.err
    assert "No such file" in ran.out and "python3.11" in ran.out


def test_workload_targets_made_by_the_real_controllers(cluster: Cluster, ns: str) -> None:
    image = cluster.images["static"]
    template = {"metadata": {"labels": {"app": "w"}}, "spec": {"containers": [
        {"name": "app", "image": image, "imagePullPolicy": "Never"}],
        "terminationGracePeriodSeconds": 1}}
    selector = {"matchExpressions": [{"key": "app", "operator": "In", "values": ["w"]}]}
    workloads = [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
         "spec": {"replicas": 1, "selector": selector, "template": template}},
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
         "spec": {"replicas": 1, "serviceName": "db", "selector": {"matchLabels": {"app": "s"}},
                  "template": {**template, "metadata": {"labels": {"app": "s"}}}}},
        {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
         "spec": {"selector": {"matchLabels": {"app": "d"}},
                  "template": {**template, "metadata": {"labels": {"app": "d"}}}}},
        {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once"},
         "spec": {"template": {"metadata": {"labels": {"app": "j"}},
                               "spec": {**template["spec"], "restartPolicy": "Never"}}}},
        # A bystander that an empty selector would pick (issue 10, item 6): first by name.
        pod("aaa-bystander", image, labels={"app": "other"}),
    ]
    cluster.apply(*workloads, namespace=ns)
    for kind, name, label in (("deploy", "web", "w"), ("sts", "db", "s"), ("ds", "agent", "d"),
                              ("job", "once", "j")):
        cluster.wait_selected(f"app={label}", ns)
        ran = cluster.dd("exec", f"{kind}/{name}", "-n", ns, "--", "hostname")
        assert ran.code == 0, (kind, ran.err)
        assert ran.out.strip() != "aaa-bystander", kind
        host = ran.out.strip()
        owner = cluster.get("pod", host, ns)["metadata"]["labels"]["app"]
        assert owner == label, (kind, host)


def debugger_states(cluster: Cluster, name: str, ns: str) -> dict[str, dict[str, Any]]:
    status = cluster.get("pod", name, ns)["status"]
    return {s["name"]: s.get("state") or {} for s in status.get("ephemeralContainerStatuses") or []}


def test_exec_debugger_lives_while_used_and_ends_when_idle(cluster: Cluster, ns: str) -> None:
    """Issue 10, item 4: the debugger lived a fixed 600 s (`sleep 600`), killing long commands."""
    start(cluster, ns, pod("api", cluster.images["static"]))
    idle = {"DISTRODEBUG_DEBUGGER_IDLE": "10"}
    # A command that runs past the idle time is not cut off: running is not being idle.
    ran = cluster.dd("exec", "pod/api", "-n", ns, "--", "sh", "-c", "sleep 20; echo done",
                     env=idle)
    assert ran.code == 0, ran.err
    assert ran.out.strip() == "done"
    (name,) = debugger_states(cluster, "api", ns)
    cluster.wait_for("api", ns, lambda p: "terminated" in debugger_states(cluster, "api", ns)[name],
                     timeout=60, what="the idle debugger's exit")
    # The next exec gets a fresh debugger rather than the ended one.
    again = cluster.dd("exec", "pod/api", "-n", ns, "--", "true", env=idle)
    assert again.code == 0, again.err
    assert len(debugger_states(cluster, "api", ns)) == 2


def test_a_pod_gets_no_more_debuggers_than_the_cap(cluster: Cluster, ns: str) -> None:
    """Issue 10, item 4: ephemeral containers are never removed; each call could add one."""
    start(cluster, ns, pod("api", cluster.images["static"]))
    cap = {"DISTRODEBUG_MAX_DEBUGGERS": "2"}
    for uid in ("1", "2"):  # a different user is a different request: a new debugger each
        ran = cluster.dd("exec", "pod/api", "-n", ns, "--user", uid, "--", "true", env=cap)
        assert ran.code == 0, ran.err
    refused = cluster.dd("exec", "pod/api", "-n", ns, "--user", "3", "--", "true", env=cap)
    assert refused.code == 125 and "already holds 2 ephemeral debuggers" in refused.err
    assert len(ephemeral(cluster, "api", ns)) == 2
    reused = cluster.dd("exec", "pod/api", "-n", ns, "--user", "2", "--", "true", env=cap)
    assert reused.code == 0, reused.err  # an existing one for the same request still serves


class LookedEarlier(KubeClient):
    """The real client, but its first read of the pod returns one made earlier: the state the
    cluster was in when we looked, before it changed under us."""

    def __init__(self, earlier: dict[str, Any], namespace: str) -> None:
        super().__init__(namespace=namespace)
        self.earlier: dict[str, Any] | None = earlier

    def read_pod(self, name: str) -> dict[str, Any]:
        earlier, self.earlier = self.earlier, None
        return earlier if earlier is not None else super().read_pod(name)


def run_looked_earlier(cluster: Cluster, ns: str, earlier: dict[str, Any],
                       command: tuple[str, ...]) -> flow.SessionResult:
    target = resolve(f"pod/{earlier['metadata']['name']}", None, None, ns)
    request = flow.SessionRequest(target=target, command=command, stdin=False,
                                  options=debug_options(target))
    return flow.run(request, KubernetesRuntime(LookedEarlier(earlier, ns)),
                    load_settings(cluster.images["toolbox"], None), UI(quiet=True))


def test_exec_in_a_debugger_that_just_ended_shows_the_kubelets_words(
        cluster: Cluster, ns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 10, item 7: the API server upgrades the stream first, and the kubelet's failure
    ("container not found") then arrives as a Failure status, which only exit codes were read
    from. Here the debugger ends between our look at the pod and the exec: the look is taken
    before its idle end, the exec after it, against the real API server and kubelet."""
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", cluster.kubeconfig)
    monkeypatch.setenv("DISTRODEBUG_DEBUGGER_IDLE", "5")
    start(cluster, ns, pod("api", cluster.images["static"]))
    ran = cluster.dd("exec", "pod/api", "-n", ns, "--", "true", env={"DISTRODEBUG_DEBUGGER_IDLE": "5"})
    assert ran.code == 0, ran.err
    before = cluster.get("pod", "api", ns)  # its debugger runs, idle
    (name,) = debugger_states(cluster, "api", ns)
    cluster.wait_for("api", ns, lambda p: "terminated" in debugger_states(cluster, "api", ns)[name],
                     timeout=60, what="the idle debugger's exit")
    with pytest.raises(SidecarFailed) as failed:
        run_looked_earlier(cluster, ns, before, ("true",))
    said = failed.value.paragraph()
    assert f'container not found ("{name}")' in said and "run the command again" in said, said


def test_target_that_restarted_since_our_look_is_refused_not_guessed(
        cluster: Cluster, ns: str, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    """Issue 10, item 3: when no process of the target container can be found, say so rather
    than fall back to PID 1 (here: pause, whose root is empty). With shareProcessNamespace the
    debugger outlives an app restart; a look at the pod taken before the restart names the old
    container, whose processes are gone."""
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", cluster.kubeconfig)
    start(cluster, ns, pod("brief", cluster.images["python"], shareProcessNamespace=True,
                           command=["/usr/bin/python3.11", "-c", "import time; time.sleep(20)"]))
    ran = cluster.dd("exec", "pod/brief", "-n", ns, "--", "true")
    assert ran.code == 0, ran.err
    before = cluster.get("pod", "brief", ns)

    def restarted(found: dict[str, Any]) -> bool:
        (app,) = found["status"]["containerStatuses"]
        return int(app.get("restartCount", 0)) >= 1 and "running" in app["state"]

    cluster.wait_for("brief", ns, restarted, timeout=90, what="a restart of the app")

    capfd.readouterr()
    result = run_looked_earlier(cluster, ns, before, ("ls", "/"))
    out, err = capfd.readouterr()
    assert result.exit_code == 125, (out, err)
    assert "no process of the target container" in err and out == "", (out, err)
