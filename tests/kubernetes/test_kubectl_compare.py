"""kubectl debug and distrodebug side by side on the same cluster: the objects the API server stored.

Not request bytes: what a real API server made of each request (defaults filled in, validation
passed). Every deliberate difference is listed next to the comparison that allows it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pexpect
import yaml

from distrodebug import labels as ours_labels
from tests.fixtures.cluster import ADMIN, NODE, Cluster, pod


def without(item: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in keys}


def test_ephemeral_debugger_matches_kubectls_but_for_what_makes_it_ours(cluster: Cluster,
                                                                        ns: str) -> None:
    cluster.apply(pod("api", cluster.images["static"]), namespace=ns)
    cluster.wait_ready("api", ns)
    image = cluster.images["toolbox"]
    cluster.kubectl("debug", "-n", ns, "api", f"--image={image}", "--target=app",
                    "--profile=general", "-c", "kubectl-debugger", "--", "sleep", "30")
    ran = cluster.dd("exec", "pod/api", "-n", ns, "--profile", "general", "--", "true")
    assert ran.code == 0, ran.err
    stored = {c["name"]: c for c in cluster.get("pod", "api", ns)["spec"]["ephemeralContainers"]}
    theirs = stored.pop("kubectl-debugger")
    (mine,) = stored.values()
    # Deliberate differences: the name (ours: distrodebug-xxxxx, found again by `exec`), the
    # command (ours: the subreaper and an idle loop that ends the debugger when unused; kubectl
    # runs what it is given), and env (our entry scripts and the request hash, DD_*).
    assert without(mine, "name", "command", "env") == without(theirs, "name", "command", "env")
    assert mine["securityContext"] == {"capabilities": {"add": ["SYS_PTRACE"]}}
    assert mine["targetContainerName"] == "app"
    assert {e["name"] for e in mine["env"]} >= {"DD_SCRIPT", "DD_REQUEST", "DD_CID"}


def test_pod_copy_against_kubectl_copy_to(cluster: Cluster, ns: str) -> None:
    source = pod("api", cluster.images["static"], labels={"app": "api"})
    source["metadata"]["annotations"] = {"team": "payments"}
    source["spec"]["containers"][0]["readinessProbe"] = {"tcpSocket": {"port": 9},
                                                         "initialDelaySeconds": 3600}
    cluster.apply(source, namespace=ns)
    cluster.wait_for("api", ns, lambda p: p["status"].get("phase") == "Running", what="Running")
    image = cluster.images["toolbox"]
    cluster.kubectl("debug", "-n", ns, "api", "--copy-to=api-kubectl", f"--image={image}",
                    "--profile=general", "-c", "debugger", "--", "sleep", "3600")
    ran = cluster.dd("exec", "pod/api", "-n", ns, "--copy", "--keep", "--profile", "general", "--",
                     "true")
    assert ran.code == 0, ran.err
    theirs = cluster.get("pod", "api-kubectl", ns)
    mine = next(p for p in json.loads(cluster.kubectl("get", "pods", "-n", ns, "-o", "json").out)[
        "items"] if p["metadata"]["name"].startswith("api-debug-"))
    t_spec, m_spec = theirs["spec"], mine["spec"]
    # The same: processes shared, the app's probes gone, the pod's security context kept, the
    # scheduler chooses the node (nodeName is not copied), the app keeps its image.
    assert t_spec["shareProcessNamespace"] is m_spec["shareProcessNamespace"] is True
    t_app = next(c for c in t_spec["containers"] if c["name"] == "app")
    m_app = next(c for c in m_spec["containers"] if c["name"] == "app")
    assert "readinessProbe" not in t_app and "readinessProbe" not in m_app
    assert t_app["image"] == m_app["image"]
    assert t_spec.get("securityContext") == m_spec.get("securityContext")
    # Deliberate differences:
    # - kubectl adds a `debugger` container beside the app; we run our shell *as* the app
    #   container (its command replaced), so a crash-looping app's files are there to look at,
    #   with our tools from an init container into an emptyDir mounted read-only.
    assert [c["name"] for c in t_spec["containers"]] == ["app", "debugger"]
    assert [c["name"] for c in m_spec["containers"]] == ["app"]
    assert [c["name"] for c in m_spec["initContainers"]] == ["distrodebug-tools"]
    assert m_app["command"][0].endswith("/sh") and "command" not in t_app
    # - restartPolicy: kubectl copies Always; ours is Never, so a copy that dies does not loop.
    assert t_spec["restartPolicy"] == "Always" and m_spec["restartPolicy"] == "Never"
    # - metadata: kubectl's general profile drops labels and annotations; ours carry only our
    #   labels (valid label values) and annotations (raw values, expiry), so cleanup finds them.
    assert not theirs["metadata"].get("labels") and not theirs["metadata"].get("annotations")
    assert mine["metadata"]["labels"][ours_labels.TOOL_KEY] == ours_labels.TOOL
    assert "app" not in mine["metadata"]["labels"]  # no Service routes to the copy either
    assert mine["metadata"]["annotations"][ours_labels.TARGET_NAME] == "api"


def test_node_pod_against_kubectls(cluster: Cluster, ns: str) -> None:
    image = cluster.images["toolbox"]
    made = cluster.kubectl("debug", "-n", ns, f"node/{NODE}", f"--image={image}",
                           "--profile=general", "--", "sleep", "30")
    theirs_name = next(w for w in (made.out + made.err).split() if w.startswith("node-debugger-"))
    ran = cluster.dd("exec", f"node/{NODE}", "-n", ns, "--keep", "--", "true")
    assert ran.code == 0, ran.err
    pods = json.loads(cluster.kubectl("get", "pods", "-n", ns, "-o", "json").out)["items"]
    theirs = next(p for p in pods if p["metadata"]["name"] == theirs_name)
    mine = next(p for p in pods if p["metadata"]["name"] != theirs_name)
    t_spec, m_spec = theirs["spec"], mine["spec"]
    same = ("hostNetwork", "hostPID", "hostIPC", "nodeName", "restartPolicy", "tolerations",
            "dnsPolicy", "enableServiceLinks")
    assert {k: t_spec.get(k) for k in same} == {k: m_spec.get(k) for k in same}
    assert t_spec["volumes"][0] == m_spec["volumes"][0]  # host-root (then each its own token)
    t_box, m_box = t_spec["containers"][0], m_spec["containers"][0]
    assert t_box["volumeMounts"][:1] == m_box["volumeMounts"][:1]  # the host's root at /host
    assert t_box.get("securityContext") == m_box.get("securityContext")
    # Deliberate differences: the name suffix is random in both; kubectl 1.34 labels its pod
    # app.kubernetes.io/managed-by=kubectl-debug, which would be false on ours (tools cleaning up
    # after kubectl would act on it), so ours carries our own labels; our container runs our
    # entry script with stdin (stdinOnce), so the pod ends with the session.
    assert theirs["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "kubectl-debug"}
    assert mine["metadata"]["labels"][ours_labels.TOOL_KEY] == ours_labels.TOOL
    assert m_box["stdin"] and m_box["stdinOnce"] and not t_box.get("stdin")


def custom_file(where: Path, spec: dict[str, Any]) -> str:
    path = where / "custom.yaml"
    path.write_text(yaml.safe_dump(spec))  # YAML, as kubectl also reads it
    return str(path)


def ephemeral_by_name(cluster: Cluster, pod_name: str, ns: str) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in cluster.get("pod", pod_name, ns)["spec"]["ephemeralContainers"]}


def logs_when_done(cluster: Cluster, pod_name: str, container: str, ns: str) -> str:
    def done(found: dict[str, Any]) -> bool:
        for key in ("containerStatuses", "ephemeralContainerStatuses"):
            for status in found["status"].get(key) or []:
                if status["name"] == container and "terminated" in (status.get("state") or {}):
                    return True
        return False

    cluster.wait_for(pod_name, ns, done, timeout=90, what=f"{container} ending")
    return cluster.kubectl("logs", pod_name, "-c", container, "-n", ns).out


def test_ephemeral_flags_side_by_side_with_kubectl_debug(cluster: Cluster, ns: str,
                                                        tmp_path: Path) -> None:
    """--env, --custom, --quiet and --attach=false on `exec` and `shell`, as kubectl debug has them:
    the command runs in a debugger nobody attached to, the shell waits for `kubectl attach`."""
    cluster.apply(pod("api", cluster.images["static"]), namespace=ns)
    cluster.wait_ready("api", ns)
    image = cluster.images["toolbox"]
    custom = custom_file(tmp_path, {"env": [{"name": "FROM_CUSTOM", "value": "yes"}],
                                       "securityContext": {"capabilities": {"add": ["NET_RAW"]}}})
    flags = ("--env", "A=1", f"--custom={custom}", "--quiet", "--attach=false")
    command = ("--", "sh", "-c", 'echo "$A $FROM_CUSTOM"')
    cluster.kubectl("debug", "-n", ns, "api", f"--image={image}", "--target=app",
                    "--profile=general", "-c", "kubectl-cmd", *flags, *command)
    ran = cluster.dd("exec", "pod/api", "-n", ns, "--profile", "general", *flags, *command)
    assert ran.code == 0 and ran.out == "", (ran.out, ran.err)
    # --quiet leaves one line: how to reach what was started is the answer, not information.
    (said,) = ran.err.splitlines()
    mine = next(name for name in ephemeral_by_name(cluster, "api", ns) if name != "kubectl-cmd")
    assert f"kubectl logs api -c {mine} -n {ns}" in said, said
    assert logs_when_done(cluster, "api", "kubectl-cmd", ns) == "1 yes\n"
    assert logs_when_done(cluster, "api", mine, ns) == "1 yes\n"
    cluster.kubectl("debug", "-n", ns, "api", f"--image={image}", "--target=app", "-i", "-t",
                    "--profile=general", "-c", "kubectl-shell", *flags)
    shell = cluster.dd("shell", "pod/api", "-n", ns, "--profile", "general", *flags)
    assert shell.code == 0, shell.err
    assert "kubectl attach api -c" in shell.err and len(shell.err.splitlines()) == 1, shell.err
    stored = ephemeral_by_name(cluster, "api", ns)
    theirs = {"cmd": stored.pop("kubectl-cmd"), "shell": stored.pop("kubectl-shell")}
    ours = {"cmd": stored.pop(mine)}
    ((shell_name, ours["shell"]),) = stored.items()
    for kind in ("cmd", "shell"):
        t, m = theirs[kind], ours[kind]
        # The same: the profile's context with --custom's list replacing (a strategic merge
        # patch replaces capabilities.add), --env and --custom's env, the target, stdin and tty.
        assert t["securityContext"] == m["securityContext"] == {"capabilities": {"add": ["NET_RAW"]}}
        env_t = {e["name"]: e.get("value") for e in t["env"]}
        env_m = {e["name"]: e.get("value") for e in m["env"]}
        assert env_t == {"A": "1", "FROM_CUSTOM": "yes"}
        assert {k: env_m.get(k) for k in env_t} == env_t  # ours has DD_* entry scripts too
        assert t["targetContainerName"] == m["targetContainerName"] == "app"
        assert bool(t.get("tty")) is bool(m.get("tty")) is (kind == "shell")
        assert bool(t.get("stdin")) is bool(m.get("stdin")) is (kind == "shell")
    # Deliberate difference: our shell has stdinOnce, so it ends when its client detaches.
    assert ours["shell"]["stdinOnce"] and not theirs["shell"].get("stdinOnce")
    # The shell started without a client waits for one: attach and it answers.
    child = pexpect.spawn("kubectl", ["--context", ADMIN, "attach", "api", "-c", shell_name,
                                      "-i", "-t", "-n", ns], env=cluster.env, encoding="utf-8",
                          timeout=60)
    child.sendline("")
    child.sendline('echo "attached $((A + 1))"')
    child.expect("attached 2")
    child.sendline("exit")
    child.expect(pexpect.EOF)


def test_copy_flags_side_by_side_with_kubectl_debug(cluster: Cluster, ns: str,
                                                    tmp_path: Path) -> None:
    """Every flag of kubectl debug's for copies, given to both on twin pods, and what the API
    server stored for each copy: --keep-labels, --keep-annotations, --keep-liveness,
    --keep-readiness, --keep-startup, --keep-init-containers=false, --same-node,
    --share-processes=false, --replace, --env, --custom, --quiet and --attach=false."""
    never = {"tcpSocket": {"port": 9}, "initialDelaySeconds": 3600}
    probes = {"livenessProbe": never, "readinessProbe": never, "startupProbe": never}
    side = {"name": "side", "image": cluster.images["static"], "imagePullPolicy": "Never", **probes}
    init = {"name": "init", "image": cluster.images["toolbox"], "imagePullPolicy": "Never",
            "command": ["true"]}
    twins = []
    for name in ("for-kubectl", "for-us"):
        twin = pod(name, cluster.images["static"], labels={"app": "twin", "tier": "web"},
                   extra_containers=[side], initContainers=[init])
        twin["metadata"]["annotations"] = {"team": "payments"}
        twin["spec"]["containers"][0].update(probes)
        twins.append(twin)
    cluster.apply(*twins, namespace=ns)
    for name in ("for-kubectl", "for-us"):
        cluster.wait_for(name, ns, lambda p: p["status"].get("phase") == "Running", what="Running")
    custom = custom_file(tmp_path, {"env": [{"name": "FROM_CUSTOM", "value": "yes"}],
                                    "securityContext": {"capabilities": {"add": ["NET_RAW"]}}})
    flags = ("--keep-labels", "--keep-annotations", "--keep-liveness", "--keep-readiness",
             "--keep-startup", "--keep-init-containers=false", "--same-node",
             "--share-processes=false", "--replace", "--env", "A=1", f"--custom={custom}",
             "--quiet", "--attach=false")
    command = ("--", "sh", "-c", 'echo "$A $FROM_CUSTOM"')
    cluster.kubectl("debug", "-n", ns, "for-kubectl", "--copy-to=copy-kubectl",
                    f"--image={cluster.images['toolbox']}", "--profile=general", "-c", "debugger",
                    *flags, *command)
    ran = cluster.dd("exec", "pod/for-us", "-n", ns, "--copy", "--profile", "general", *flags,
                     *command)
    assert ran.code == 0 and ran.out == "", (ran.out, ran.err)
    assert len(ran.err.splitlines()) == 1, ran.err  # --quiet: only where to find the output
    said = ran.err
    pods = {p["metadata"]["name"]: p for p in json.loads(
        cluster.kubectl("get", "pods", "-n", ns, "-o", "json").out)["items"]
        if not p["metadata"].get("deletionTimestamp")}
    # --replace: both originals are gone, the copies stay (--attach=false keeps ours too).
    assert "for-kubectl" not in pods and "for-us" not in pods
    theirs = pods.pop("copy-kubectl")
    ((mine_name, mine),) = pods.items()
    assert f"kubectl logs {mine_name} -c app -n {ns}" in said, said
    assert logs_when_done(cluster, "copy-kubectl", "debugger", ns) == "1 yes\n"
    assert logs_when_done(cluster, mine_name, "app", ns) == "1 yes\n"
    t_spec, m_spec = theirs["spec"], mine["spec"]
    assert t_spec["nodeName"] == m_spec["nodeName"] == NODE
    assert t_spec["shareProcessNamespace"] is m_spec["shareProcessNamespace"] is False
    assert [c["name"] for c in t_spec.get("initContainers") or []] == []
    assert [c["name"] for c in m_spec["initContainers"]] == ["distrodebug-tools"]  # our toolbox
    applied = "kubectl.kubernetes.io/last-applied-configuration"  # names its own pod
    for key in ("labels", "annotations"):
        kept = {k: v for k, v in mine["metadata"][key].items()
                if not k.startswith("io.distrodebug") and k != applied}
        assert kept == {k: v for k, v in theirs["metadata"][key].items() if k != applied}
    assert theirs["metadata"]["labels"] == {"app": "twin", "tier": "web"}
    assert mine["metadata"]["annotations"]["team"] == "payments"
    t_side = next(c for c in t_spec["containers"] if c["name"] == "side")
    m_side = next(c for c in m_spec["containers"] if c["name"] == "side")
    assert {p: t_side[p] for p in probes} == {p: m_side[p] for p in probes}
    t_debugger = next(c for c in t_spec["containers"] if c["name"] == "debugger")
    m_app = next(c for c in m_spec["containers"] if c["name"] == "app")
    assert t_debugger["securityContext"] == m_app["securityContext"] == {
        "capabilities": {"add": ["NET_RAW"]}}
    env_t = {e["name"]: e.get("value") for e in t_debugger["env"]}
    assert env_t == {"A": "1", "FROM_CUSTOM": "yes"}
    assert {e["name"]: e.get("value") for e in m_app["env"] if e["name"] in env_t} == env_t
    # Deliberate difference: ours runs the command as the app container (kubectl adds a
    # container beside it), so the app container's own probes are not kept: they would kill it.
    t_app = next(c for c in t_spec["containers"] if c["name"] == "app")
    assert all(p in t_app for p in probes) and not any(p in m_app for p in probes)
