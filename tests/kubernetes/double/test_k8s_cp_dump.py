"""`cp` and `dump` on a distroless pod, through the pod's debug container."""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest
import zstandard
from test_k8s_sessions import run_dd

pytestmark = [pytest.mark.engine]
EVERY_BYTE = bytes(range(256)) * 256


@pytest.fixture
def python_pod(k8s_double: Any, python_image: str) -> str:
    k8s_double.create_pod({"metadata": {"name": "web"}, "spec": {
        "securityContext": {"runAsUser": 65532, "runAsNonRoot": True},
        "containers": [{"name": "app", "image": python_image, "imagePullPolicy": "Never",
                        "env": [{"name": "API_TOKEN", "value": "s3cr3t"}]}]}})
    k8s_double.wait_for_container("web", "app")
    return "web"


def test_cp_both_ways(k8s_double: Any, python_pod: str, toolbox: str, tmp_path: Path) -> None:
    (tmp_path / "every-byte.bin").write_bytes(EVERY_BYTE)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(1 << 20) * 16)
    ran = run_dd(k8s_double, toolbox, "cp", str(tmp_path / "every-byte.bin"), "pod/web:/tmp/")
    assert ran.returncode == 0, ran.stderr
    assert run_dd(k8s_double, toolbox, "cp", str(big), "pod/web:/tmp/big.bin").returncode == 0
    out = tmp_path / "out"
    out.mkdir()
    ran = run_dd(k8s_double, toolbox, "cp", "pod/web:/tmp/every-byte.bin", str(out))
    assert ran.returncode == 0, ran.stderr
    assert (out / "every-byte.bin").read_bytes() == EVERY_BYTE
    assert run_dd(k8s_double, toolbox, "cp", "pod/web:/tmp/big.bin", str(out)).returncode == 0
    assert (out / "big.bin").read_bytes() == big.read_bytes()
    ran = run_dd(k8s_double, toolbox, "cp", str(tmp_path / "every-byte.bin"), "pod/web:/etc/")
    assert ran.returncode == 125 and "may not write" in ran.stderr
    # The debugger runs as the pod's uid here (auto), so its view is /proc/1/root, not a chroot.
    ran = run_dd(k8s_double, toolbox, "exec", "pod/web", "--", "sh", "-c",
                 'ls -ln "$DISTRODEBUG_ROOT/tmp/every-byte.bin"')
    assert " 65532 " in ran.stdout, ran.stderr


def test_dump_pod(k8s_double: Any, python_pod: str, toolbox: str, tmp_path: Path) -> None:
    bundle = tmp_path / "pod.tar.zst"
    ran = run_dd(k8s_double, toolbox, "dump", "pod/web", "-f", str(bundle), "--path", "/app",
                 "--path", "/etc/passwd")
    assert ran.returncode == 0, ran.stderr
    assert run_dd(k8s_double, toolbox, "verify", str(bundle)).returncode == 0
    with zstandard.open(bundle, "rb") as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
        members = {m.name: (tar.extractfile(m).read() if m.isfile() else b"") for m in tar}
    manifest = json.loads(members["manifest.json"])
    app = next(e for e in manifest["entries"] if e["path"] == "app/app.py")
    assert app["sha256"] == hashlib.sha256(members["fs/app/app.py"]).hexdigest()
    assert manifest["target"]["pod"] == "web" and manifest["target"]["runtime"] == "kubernetes"
    assert "s3cr3t" not in members["meta/pod.json"].decode()
    assert "s3cr3t" not in members["meta/environment.json"].decode()
    processes = json.loads(members["meta/processes.json"])
    assert ["/usr/bin/python3.11", "app.py"] in [p["cmdline"] for p in processes]
    assert run_dd(k8s_double, toolbox, "report", str(bundle)).returncode == 0
