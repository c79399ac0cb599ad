"""Warm time to result of `distrodebug exec T -- true` against a raw `docker run` of the same
sidecar, and `distrodebug --help` against `python3 -c 'import typer'`. Prints medians and ratios.

    python3 benchmarks/startup.py [--runs 15]

Needs a running engine and the test images (built on first use, as in the tests).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fixtures.engine import require_engine  # noqa: E402
from tests.fixtures.images import ensure_static_target, ensure_toolbox  # noqa: E402


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def median_of(argv: list[str], runs: int, env: dict[str, str]) -> float:
    timed(argv, env)  # warm caches
    return statistics.median(timed(argv, env) for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    client = require_engine()
    toolbox = ensure_toolbox(client)
    target = client.containers.run(ensure_static_target(client, nonroot=False), detach=True,
                                   labels={"io.distrodebug.test": "1"})
    env = {**os.environ, "DISTRODEBUG_IMAGE": toolbox}
    try:
        cases = {
            "docker run --rm (pid+net join) true": [
                "docker", "run", "--rm", f"--pid=container:{target.id}",
                f"--network=container:{target.id}", toolbox, "true"],
            "distrodebug exec T -- true": ["distrodebug", "exec", target.id, "--", "true"],
            "python3 -c 'import typer'": [sys.executable, "-c", "import typer"],
            "distrodebug --help": ["distrodebug", "--help"],
        }
        results = {name: median_of(argv, args.runs, env) for name, argv in cases.items()}
    finally:
        target.remove(force=True)
    for name, seconds in results.items():
        print(f"{name:40s} median {seconds * 1000:7.1f} ms  ({args.runs} runs)")
    names = list(results)
    print(f"exec ratio   {results[names[1]] / results[names[0]]:.2f}x  (goal <= 1.10x)")
    print(f"--help ratio {results[names[3]] / results[names[2]]:.2f}x  (goal <= 1.5x)")


if __name__ == "__main__":
    main()
