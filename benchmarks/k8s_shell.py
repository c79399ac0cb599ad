"""Time to the first prompt, and API requests, for a shell in a pod on the real cluster.

    bash scripts/cluster.sh up && python3 benchmarks/k8s_shell.py [--runs 7]

`distrodebug shell pod/api` against `kubectl debug -it pod/api --image=SAME --target=app` on the
same cluster, in the same run, alternating, medians. Each run adds a debugger to a fresh pod
(ephemeral containers are never removed, so a pod reused across runs would grow). Requests:
kubectl's own `-v=6` log lines; ours are counted by hooks around urllib3 and websocket-client
in the child process (the CLI unchanged otherwise). The goal (issue 9): at most 1.2x kubectl's
time, and no more requests than kubectl sends.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pexpect  # noqa: E402

from tests.fixtures.cluster import REQUEST_LOG, connect, load, new_namespace, pod  # noqa: E402
from tests.fixtures.engine import require_engine  # noqa: E402
from tests.fixtures.images import ensure_static_target, ensure_toolbox  # noqa: E402

OURS = r"\[distrodebug [^\]]+\] \S+ [#$] "
THEIRS = r"/ # "


def prompt_time(argv: list[str], env: dict[str, str], prompt: str) -> tuple[float, str]:
    start = time.perf_counter()
    child = pexpect.spawn(argv[0], argv[1:], env=env, encoding="utf-8", timeout=120,
                          dimensions=(30, 100))
    transcript = io.StringIO()
    child.logfile_read = transcript
    while True:
        # kubectl's shell may print its prompt before the attach: it asks for Enter, as users do.
        seen = child.expect([prompt, "try pressing enter"])
        if seen == 0:
            break
        child.sendline("")
    elapsed = time.perf_counter() - start
    child.sendline("exit")
    child.expect(pexpect.EOF)
    child.close()
    return elapsed, transcript.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    engine = require_engine()
    toolbox = ensure_toolbox(engine)
    target = ensure_static_target(engine, nonroot=False)
    cluster = connect()
    load([toolbox, target])
    ns = new_namespace(cluster)
    env = {**cluster.env, "DISTRODEBUG_IMAGE": toolbox, "TERM": "xterm"}
    ours: list[float] = []
    theirs: list[float] = []
    our_requests: list[int] = []
    their_requests: list[int] = []
    try:
        for run in range(args.runs):
            for who in (("ours", "theirs") if run % 2 == 0 else ("theirs", "ours")):
                name = f"api-{uuid.uuid4().hex[:6]}"
                cluster.apply(pod(name, target), namespace=ns)
                cluster.wait_ready(name, ns)
                if who == "ours":
                    counter = Path(f"/tmp/dd-bench-{name}")
                    seconds, _ = prompt_time(
                        [sys.executable, "-c", REQUEST_LOG, str(counter), "shell",
                         f"pod/{name}", "-n", ns], env, OURS)
                    ours.append(seconds)
                    our_requests.append(len(counter.read_text().splitlines()))
                    counter.unlink()
                else:
                    seconds, log = prompt_time(
                        ["kubectl", "--context", "distrodebug", "debug", "-it", "-n", ns, name,
                         f"--image={toolbox}", "--target=app", "--profile=general", "-v=6"],
                        env, THEIRS)
                    theirs.append(seconds)
                    their_requests.append(len(re.findall(r'"Response" verb="[A-Z]+"', log)))
                cluster.kubectl("delete", "pod", name, "-n", ns, "--wait=false",
                                "--grace-period=0")
    finally:
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
    ratio = statistics.median(ours) / statistics.median(theirs)
    print(json.dumps({
        "runs": args.runs,
        "distrodebug_seconds_median": round(statistics.median(ours), 3),
        "kubectl_seconds_median": round(statistics.median(theirs), 3),
        "ratio": round(ratio, 2),
        "distrodebug_requests_median": statistics.median(our_requests),
        "kubectl_requests_median": statistics.median(their_requests),
        "distrodebug_seconds": [round(x, 3) for x in ours],
        "kubectl_seconds": [round(x, 3) for x in theirs],
    }, indent=2))


if __name__ == "__main__":
    main()
