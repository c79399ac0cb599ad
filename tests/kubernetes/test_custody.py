"""A signed dump of a pod on the real cluster: the custody record names the pod as the API server
knows it (UID, namespace, node, owner, runtime container ID, image digest)."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import zstandard

from tests.fixtures.cluster import Cluster, pod


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs OpenSSH's ssh-keygen")
def test_signed_pod_dump_records_the_pod_identity(cluster: Cluster, ns: str, tmp_path: Path) -> None:
    cluster.kubectl("create", "configmap", "owner", "-n", ns)
    owner = cluster.get("configmap", "owner", ns)
    manifest = pod("web", cluster.images["python"], user=65532)
    manifest["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "ConfigMap",
                                                "name": "owner", "uid": owner["metadata"]["uid"]}]
    cluster.apply(manifest, namespace=ns)
    found = cluster.wait_ready("web", ns)
    key = tmp_path / "id_ecdsa"
    subprocess.run(["ssh-keygen", "-q", "-t", "ecdsa", "-N", "", "-C", "k8s@lab", "-f", str(key)],
                   check=True)
    bundle = tmp_path / "web.tar.zst"
    ran = cluster.dd("dump", "pod/web", "-n", ns, "-f", str(bundle), "--path", "/app", "--sign", str(key))
    assert ran.code == 0, ran.err

    with zstandard.open(bundle, "rb") as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
        data = next(tar.extractfile(m).read() for m in tar if m.name == "manifest.json")  # type: ignore[union-attr]
    target = json.loads(data)["custody"]["target"]
    status = found["status"]["containerStatuses"][0]
    assert target["runtime"] == "kubernetes" and target["pod"] == "web" and target["namespace"] == ns
    assert target["endpoint"].startswith("https://")
    assert target["pod_uid"] == found["metadata"]["uid"]
    assert target["node"] == found["spec"]["nodeName"]
    assert target["owners"] == [{"kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"],
                                 "controller": None}]
    assert target["container_id"] == status["containerID"]
    assert target["image_digest"] and target["image_digest"] in status["imageID"]
    phases = json.loads(data)["custody"]["phases"]
    assert [p["name"] for p in phases] == ["identity", "runtime state", "volatile", "records", "filesystem"]

    allowed = tmp_path / "allowed_signers"
    allowed.write_text("k8s@lab " + key.with_suffix(".pub").read_text())
    verified = cluster.dd("verify", str(bundle), "--signer", str(allowed))
    assert verified.code == 0 and "signature: GOOD" in verified.err, verified.err
