"""cp and dump throughput through the API-server double, against `docker cp` of the same data.

    python3 benchmarks/k8s_transfer.py [--mib 256]

One pod (the distroless Python app, uid 65532); a file of MIB mebibytes of random data is copied
in and out with `distrodebug cp pod/...`, the pod is dumped with `--path /tmp`, and the same file
is copied in and out of the pod's real container with `docker cp`. Best of two runs each.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "kubernetes"))

from apiserver import ApiServerDouble  # noqa: E402

from tests.fixtures.engine import require_engine  # noqa: E402
from tests.fixtures.images import ensure_python_target, ensure_toolbox  # noqa: E402


def best(argv: list[str], env: dict[str, str], runs: int = 2) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=256)
    args = parser.parse_args()
    client = require_engine()
    toolbox = ensure_toolbox(client)
    app = ensure_python_target(client)
    double = ApiServerDouble(infra_image=toolbox).start()
    try:
        double.create_pod({"metadata": {"name": "web"}, "spec": {
            "securityContext": {"runAsUser": 65532},
            "containers": [{"name": "app", "image": app, "imagePullPolicy": "Never"}]}})
        double.wait_for_container("web", "app")
        env = {**os.environ, "KUBECONFIG": double.kubeconfig, "DISTRODEBUG_IMAGE": toolbox}
        cid = double.docker_id("web", "app")
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "data.bin"
            with data.open("wb") as handle:
                for _ in range(args.mib):
                    handle.write(os.urandom(1 << 20))
            out = Path(tmp) / "out"
            out.mkdir()
            subprocess.run(["distrodebug", "exec", "pod/web", "--", "true"], env=env, check=True)
            results = {
                "distrodebug cp ./f pod:/tmp/": best(
                    ["distrodebug", "cp", str(data), "pod/web:/tmp/"], env),
                "docker cp ./f c:/tmp/d.bin": best(["docker", "cp", str(data), f"{cid}:/tmp/d.bin"], env),
                "distrodebug cp pod:/tmp/f ./": best(
                    ["distrodebug", "cp", "pod/web:/tmp/data.bin", str(out / "a.bin")], env),
                "docker cp c:/tmp/d.bin ./": best(
                    ["docker", "cp", f"{cid}:/tmp/d.bin", str(out / "b.bin")], env),
                "distrodebug dump pod --path /tmp (.tar)": best(
                    ["distrodebug", "dump", "pod/web", "-f", str(out / "d.tar"), "--path", "/tmp/data.bin"],
                    env),
            }
    finally:
        double.stop()
    size = args.mib * (1 << 20)
    for name, seconds in results.items():
        print(f"{name:42s} {seconds:6.2f} s  {size / seconds / 1e6:7.1f} MB/s")
    into = results["docker cp ./f c:/tmp/d.bin"] / results["distrodebug cp ./f pod:/tmp/"]
    out_of = results["docker cp c:/tmp/d.bin ./"] / results["distrodebug cp pod:/tmp/f ./"]
    print(f"cp into the pod: {into:.2f}x docker cp's speed; out of it: {out_of:.2f}x")


if __name__ == "__main__":
    main()
