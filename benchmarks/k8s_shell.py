"""API requests per `shell` and time from command to prompt, against the API-server double.

    python3 benchmarks/k8s_shell.py [--runs 5]

Compares `distrodebug shell pod/api` with `kubectl debug -it pod/api --image=... --target=app`
(the real kubectl binary) on the same double, counting the requests each sends.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "kubernetes"))

import pexpect  # noqa: E402
from apiserver import ApiServerDouble  # noqa: E402

from tests.fixtures.engine import require_engine  # noqa: E402
from tests.fixtures.images import ensure_static_target, ensure_toolbox  # noqa: E402

PROMPT = r"\[distrodebug [^\]]+\] \S+ [#$] |/ # "


def session(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    child = pexpect.spawn(argv[0], argv[1:], env=env, encoding="utf-8", timeout=60,
                          dimensions=(30, 100))
    child.expect(PROMPT)
    elapsed = time.perf_counter() - start
    child.sendline("exit")
    child.expect(pexpect.EOF)
    child.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    client = require_engine()
    toolbox = ensure_toolbox(client)
    app = ensure_static_target(client, nonroot=True)
    double = ApiServerDouble(infra_image=toolbox).start()
    try:
        env = {**os.environ, "KUBECONFIG": double.kubeconfig, "DISTRODEBUG_IMAGE": toolbox,
               "TERM": "xterm"}
        commands = {"distrodebug shell": ["distrodebug", "shell", "pod/api"]}
        if shutil.which("kubectl"):
            commands["kubectl debug -it"] = ["kubectl", "debug", "-it", "pod/api", f"--image={toolbox}",
                                             "--target=app", "--profile=general", "--", "sh"]
        results: dict[str, tuple[float, list[str]]] = {}
        for name, argv in commands.items():
            times, requests = [], []
            for i in range(args.runs):
                pod = f"api{i}-{name.split()[0]}"
                double.create_pod({"metadata": {"name": pod}, "spec": {"containers": [
                    {"name": "app", "image": app, "imagePullPolicy": "Never"}]}})
                double.wait_for_container(pod, "app")
                double.clear_requests()
                times.append(session([a.replace("pod/api", f"pod/{pod}") for a in argv], env))
                requests = [f"{r.method} {r.path.split('?')[0].rsplit('/', 1)[-1]}"
                            for r in double.requests()]
            results[name] = (statistics.median(times), requests)
    finally:
        double.stop()
    for name, (seconds, requests) in results.items():
        print(f"{name:20s} to prompt: median {seconds * 1000:6.0f} ms; {len(requests)} API requests: "
              + ", ".join(requests))


if __name__ == "__main__":
    main()
