"""kubectl debug and distrodebug side by side on the same cluster: the objects the API server stored.

Not request bytes: what a real API server made of each request (defaults filled in, validation
passed). Every deliberate difference is listed next to the comparison that allows it.
"""

from __future__ import annotations

import json
from typing import Any

from distrodebug import labels as ours_labels
from tests.fixtures.cluster import NODE, Cluster, pod


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
