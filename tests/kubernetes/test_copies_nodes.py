"""Pod copies, node pods, cp and dump on the real cluster: objects a real API server accepts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from distrodebug import labels
from tests.fixtures.cluster import NODE, Cluster, pod


def our_pods(cluster: Cluster, ns: str) -> list[dict[str, Any]]:
    found = cluster.kubectl("get", "pods", "-n", ns, "-l", labels.selector(), "-o", "json").out
    return list(json.loads(found)["items"])


def test_copy_of_a_real_crash_loop_keeps_the_app_up(cluster: Cluster, ns: str) -> None:
    """Issue 10, item 1: our labels were not valid label values, so every copy got a 422."""
    crashing = pod("crash", cluster.images["static"], command=["/app", "--no-such-flag"],
                   restartPolicy="Always", nodeName=NODE)
    crashing["spec"]["containers"][0]["command"] = ["/bin/false"]  # no such file: it crashes
    cluster.apply(crashing, namespace=ns)
    cluster.wait_for("crash", ns, lambda p: any(
        (s.get("state", {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff"
        or s.get("restartCount", 0) >= 1 for s in p["status"].get("containerStatuses") or []),
        what="a crash loop")
    refused = cluster.dd("exec", "pod/crash", "-n", ns, "--", "true")
    assert refused.code == 125 and "--copy" in refused.err
    ran = cluster.dd("exec", "pod/crash", "-n", ns, "--copy", "--", "sh", "-c",
                     "ls /app && echo $DISTRODEBUG_ROOT && exit 4")
    assert ran.code == 4, ran.err
    assert ran.out.split() == ["/app", "/"]
    assert our_pods(cluster, ns) == []  # the copy was deleted when the session ended


def test_long_dotted_pod_name_gives_valid_names_and_labels(cluster: Cluster, ns: str) -> None:
    """Issue 10, item 1: a pod name may be 253 characters with dots; the copy's name was its
    first 40 characters and '-debug-', here 'aaa.-debug-...', which the API server refuses."""
    name = "a" * 39 + "." + "b" * 60
    cluster.apply(pod(name, cluster.images["static"], labels={"app": "long"}), namespace=ns)
    cluster.wait_ready(name, ns)
    ran = cluster.dd("exec", f"pod/{name}", "-n", ns, "--", "true")
    assert ran.code == 0, ran.err
    ran = cluster.dd("exec", f"pod/{name}", "-n", ns, "--copy", "--keep", "--", "true")
    assert ran.code == 0, ran.err
    (copy,) = our_pods(cluster, ns)
    assert copy["metadata"]["name"].startswith("a" * 39)
    assert all(labels.is_label_value(v) for v in copy["metadata"]["labels"].values())
    assert copy["metadata"]["annotations"][labels.TARGET_NAME] == name


def test_copy_flags_as_kubectl_names_them(cluster: Cluster, ns: str) -> None:
    source = pod("src", cluster.images["static"], labels={"app": "src", "tier": "web"})
    source["metadata"]["annotations"] = {"team": "payments"}
    source["spec"]["containers"][0]["livenessProbe"] = {"tcpSocket": {"port": 9},
                                                        "initialDelaySeconds": 3600}
    cluster.apply(source, namespace=ns)
    cluster.wait_ready("src", ns)
    custom = Path(cluster.kubeconfig).parent / f"custom-{ns}.json"
    custom.write_text(json.dumps({"env": [{"name": "FROM_CUSTOM", "value": "yes"}]}))
    try:
        ran = cluster.dd("exec", "pod/src", "-n", ns, "--copy", "--keep", "--keep-labels",
                         "--keep-annotations", "--same-node", "--share-processes=false",
                         "--env", "DEBUG=1", "--custom", str(custom), "--", "sh", "-c",
                         'echo "$DEBUG $FROM_CUSTOM"')
    finally:
        custom.unlink()
    assert ran.code == 0, ran.err
    assert ran.out.strip() == "1 yes"
    (copy,) = our_pods(cluster, ns)
    meta = copy["metadata"]
    assert meta["labels"]["tier"] == "web" and meta["annotations"]["team"] == "payments"
    assert copy["spec"]["nodeName"] == NODE and copy["spec"]["shareProcessNamespace"] is False
    assert all(labels.is_label_value(v) for v in meta["labels"].values())
    assert meta["annotations"][labels.TARGET_NAME] == "src"
    app = next(c for c in copy["spec"]["containers"] if c["name"] == "app")
    assert "livenessProbe" not in app  # kept probes stay off the container that runs our shell
    assert "kept pod" in ran.err


def test_replace_deletes_the_original_once_the_copy_runs(cluster: Cluster, ns: str) -> None:
    cluster.apply(pod("old", cluster.images["static"]), namespace=ns)
    cluster.wait_ready("old", ns)
    ran = cluster.dd("exec", "pod/old", "-n", ns, "--copy", "--replace", "--keep", "--", "true")
    assert ran.code == 0, ran.err
    gone = cluster.kubectl("get", "pod", "old", "-n", ns, check=False)
    assert gone.code != 0 or '"deletionTimestamp"' in gone.out


def test_unschedulable_copy_ends_with_the_schedulers_reason(cluster: Cluster, ns: str) -> None:
    """Issue 10, item 10: the wait ran into --timeout instead of saying why."""
    # Bound straight to the node, the original runs: the kubelet does not check pod affinity.
    # Its copy goes through the scheduler, which finds no pod to sit beside.
    source = pod("big", cluster.images["static"], nodeName=NODE, affinity=LONELY)
    cluster.apply(source, namespace=ns)
    cluster.wait_ready("big", ns)
    ran = cluster.dd("exec", "pod/big", "-n", ns, "--copy", "--timeout", "100", "--", "true",
                     timeout=60)
    assert ran.code == 125
    assert "cannot be scheduled" in ran.err and "node" in ran.err.lower(), ran.err
    assert our_pods(cluster, ns) == []


#: Bound straight to the node, a pod runs: the kubelet does not check pod affinity. Its copy,
#: sent to the scheduler, finds no pod to sit beside and is Unschedulable.
LONELY = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
    "labelSelector": {"matchLabels": {"no-such": "pod"}}, "topologyKey": "kubernetes.io/hostname"}]}}


def test_copy_with_a_claim_keeps_the_node_and_mounts_it_read_only(cluster: Cluster,
                                                                  ns: str) -> None:
    """Issue 10, item 10: a ReadWriteOnce claim is attached on the original's node, so its copy
    must land there (the scheduler would place it anywhere: here, nowhere), and the volume the
    copy shares with the original is read-only unless --writable-volumes asks otherwise."""
    pv = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"pv-{ns}"},
          "spec": {"capacity": {"storage": "10Mi"}, "accessModes": ["ReadWriteOnce"],
                   "storageClassName": f"manual-{ns}", "persistentVolumeReclaimPolicy": "Retain",
                   "hostPath": {"path": f"/tmp/distrodebug-pv-{ns}", "type": "DirectoryOrCreate"},
                   "claimRef": {"namespace": ns, "name": "data"}}}
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
             "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": f"manual-{ns}",
                      "volumeName": f"pv-{ns}", "resources": {"requests": {"storage": "10Mi"}}}}
    source = pod("db", cluster.images["static"], nodeName=NODE, affinity=LONELY,
                 volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}])
    source["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    cluster.kubectl("apply", "-f", "-", input=json.dumps(pv))
    try:
        cluster.apply(claim, source, namespace=ns)
        cluster.wait_ready("db", ns)
        write = ("--", "sh", "-c", "touch /data/x 2>&1 && echo wrote; ls /data")
        ran = cluster.dd("exec", "pod/db", "-n", ns, "--copy", "--timeout", "60", *write)
        assert ran.code == 0, ran.err
        assert "Read-only file system" in ran.out and "wrote" not in ran.out, ran.out
        ran = cluster.dd("exec", "pod/db", "-n", ns, "--copy", "--writable-volumes",
                         "--timeout", "60", *write)
        assert ran.code == 0, ran.err
        assert ran.out.split() == ["wrote", "x"], ran.out
        assert our_pods(cluster, ns) == []
    finally:
        cluster.kubectl("delete", "pod", "db", "-n", ns, "--grace-period=0", "--wait=false")
        cluster.kubectl("delete", "pvc", "data", "-n", ns, "--wait=false")
        cluster.kubectl("delete", "pv", f"pv-{ns}", "--wait=false")


def test_copy_the_kubelet_rejects_ends_with_its_reason(cluster: Cluster, ns: str) -> None:
    """Issue 10, item 10: a copy that is Failed ends the wait with the kubelet's reason. Kept on
    the node (--same-node), the copy asks for the host port its original holds: the kubelet
    rejects it at admission, and the pod is Failed at once."""
    port = 30000 + int(ns[-4:], 16) % 20000
    source = pod("web", cluster.images["static"], nodeName=NODE)
    source["spec"]["containers"][0]["ports"] = [{"containerPort": 8080, "hostPort": port}]
    cluster.apply(source, namespace=ns)
    cluster.wait_ready("web", ns)
    ran = cluster.dd("exec", "pod/web", "-n", ns, "--copy", "--same-node", "--timeout", "100",
                     "--", "true", timeout=60)
    assert ran.code == 125, ran.err
    assert "failed" in ran.err and "NodePorts" in ran.err, ran.err
    assert our_pods(cluster, ns) == []


def test_node_pod_sees_the_host(cluster: Cluster, ns: str) -> None:
    """Issue 10, item 1: node pods carried invalid labels too."""
    ran = cluster.dd("exec", f"node/{NODE}", "-n", ns, "--", "sh", "-c",
                     "test -d /host/var/lib/distrodebug-cluster && echo host-root")
    assert ran.code == 0, ran.err
    assert ran.out.strip() == "host-root"
    assert our_pods(cluster, ns) == []


def test_cp_both_ways_into_a_read_only_non_root_app(cluster: Cluster, ns: str, tmp_path: Path) -> None:
    manifest = pod("files", cluster.images["nonroot"], user=65532, read_only=True)
    manifest["spec"]["volumes"] = [{"name": "data", "emptyDir": {}}]
    manifest["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    cluster.apply(manifest, namespace=ns)
    cluster.wait_ready("files", ns)
    local = tmp_path / "payload.bin"
    local.write_bytes(bytes(range(256)) * 4096)  # 1 MiB: more than any pipe holds
    into = cluster.dd("cp", str(local), "pod/files:/data/", "-n", ns)
    assert into.code == 0, into.err
    back = tmp_path / "back"
    back.mkdir()
    out = cluster.dd("cp", "pod/files:/data/payload.bin", str(back), "-n", ns)
    assert out.code == 0, out.err
    assert (back / "payload.bin").read_bytes() == local.read_bytes()
    owner = cluster.dd("exec", "pod/files", "-n", ns, "--", "stat", "-c", "%u",
                       "/proc/1/root/data/payload.bin")
    assert owner.out.strip() == "65532", owner
    refused = cluster.dd("cp", str(local), "pod/files:/etc/", "-n", ns)
    assert refused.code != 0 and "read-only" in refused.err.lower(), refused.err


def test_dump_of_a_pod_verifies(cluster: Cluster, ns: str, tmp_path: Path) -> None:
    cluster.apply(pod("web", cluster.images["python"], user=65532), namespace=ns)
    cluster.wait_ready("web", ns)
    bundle = tmp_path / "web.tar.zst"
    ran = cluster.dd("dump", "pod/web", "-n", ns, "-f", str(bundle), "--path", "/app")
    assert ran.code == 0, ran.err
    verify = subprocess.run([sys.executable, "-m", "distrodebug", "verify", str(bundle)],
                            capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    report = json.loads(subprocess.run([sys.executable, "-m", "distrodebug", "report",
                                        str(bundle), "-o", "json"], capture_output=True,
                                       text=True).stdout)
    assert report["target"]["pod"] == "web" and report["target"]["namespace"] == ns
    assert any("python3.11" in " ".join(p.get("cmdline") or []) for p in report["processes"])


def test_doctor_on_the_real_cluster(cluster: Cluster, ns: str) -> None:
    cluster.apply(pod("api", cluster.images["nonroot"], user=65532), namespace=ns)
    cluster.wait_ready("api", ns)
    ran = cluster.dd("doctor", "pod/api", "-n", ns, "-o", "json")
    assert ran.code == 0, ran.out + ran.err
    report = json.loads(ran.out)
    assert report["ok"] and "v1.34" in report["checks"][0]["detail"]
    assert "65532" in report["prediction"]


def test_dump_memory_of_a_pod_opens_in_gdb(cluster: Cluster, ns: str, tmp_path: Path) -> None:
    """The same script through an ephemeral debugger: root and non-root pods, no capability
    added to the debugger (root's default set, or the target's own uid with none)."""
    import shutil
    import tarfile

    import zstandard

    for name, user in (("root", 0), ("nonroot", 65532)):
        cluster.apply(pod(name, cluster.images["python"], user=user), namespace=ns)
    for name, _ in (("root", 0), ("nonroot", 65532)):
        cluster.wait_ready(name, ns)
        bundle = tmp_path / f"{name}.tar.zst"
        ran = cluster.dd("dump", f"pod/{name}", "-n", ns, "-f", str(bundle), "--memory",
                         "--path", "/etc/passwd")
        assert ran.code == 0, ran.err
        verify = subprocess.run([sys.executable, "-m", "distrodebug", "verify", str(bundle)],
                                capture_output=True, text=True)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        with zstandard.open(bundle, "rb") as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
            members = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]
        info = json.loads(members["meta/memory.json"])
        # Only the target container's: the debuggers' processes are named as left out.
        assert [p["name"] for p in info["processes"] if "file" in p] == ["python3.11"], info
        assert all("file" in p or "skipped_reason" in p for p in info["processes"])
        core = tmp_path / f"{name}.core"
        core.write_bytes(members["memory/1-python3.11.core"])
        gdb = shutil.which("gdb")
        assert gdb is not None, "scripts/setup.sh installs gdb"
        out = subprocess.run([gdb, "--batch", "-nx", "-c", str(core), "-ex", "info threads",
                              "-ex", "info proc mappings"], capture_output=True, text=True).stdout
        assert "LWP 1" in out and "/usr/bin/python3.11" in out, out


def test_dump_memory_refused_by_pod_security_says_so(cluster: Cluster, ns_factory: Any,
                                                     tmp_path: Path) -> None:
    """A non-dumpable process refuses its own uid; Pod Security 'restricted' refuses the
    SYS_PTRACE debugger that could read it: the message says both, no bundle is written."""
    ns = ns_factory({"pod-security.kubernetes.io/enforce": "restricted"})
    app = ("import ctypes, time\nctypes.CDLL(None).prctl(4, 0, 0, 0, 0)\n"  # PR_SET_DUMPABLE 0
           "time.sleep(600)\n")
    cluster.apply(pod("locked", cluster.images["python"], user=65532, restricted=True,
                      command=["/usr/bin/python3.11", "-c", app]), namespace=ns)
    cluster.wait_ready("locked", ns)
    bundle = tmp_path / "locked.tar.zst"
    ran = cluster.dd("dump", "pod/locked", "-n", ns, "-f", str(bundle), "--memory",
                     "--path", "/etc/passwd")
    assert ran.code != 0 and not bundle.exists()
    assert "kernel refused to let the debugger read the target's memory" in ran.err, ran.err
    assert "Pod Security" in ran.err and "Leave --memory out" in ran.err, ran.err
