"""Dump throughput with hashing against `docker export > file`, and the dump's peak RSS.

    python3 benchmarks/dump_throughput.py [--mib 1024] [--small 20000]

Makes a toolbox container whose writable layer holds MIB mebibytes: SMALL files of 4 KiB and
the rest in 64 MiB files of random data, then times both on the same container, twice each.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fixtures.engine import require_engine  # noqa: E402
from tests.fixtures.images import ensure_toolbox  # noqa: E402


def timed(argv: list[str], out: Path | None, env: dict[str, str]) -> tuple[float, int]:
    start = time.perf_counter()
    with open(out, "wb") if out else open(os.devnull, "wb") as sink:
        proc = subprocess.run(["/usr/bin/time", "-v", *argv], stdout=sink, stderr=subprocess.PIPE,
                              env=env, check=True)
    seconds = time.perf_counter() - start
    rss = int(re.search(rb"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    return seconds, rss


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--small", type=int, default=20000)
    args = parser.parse_args()
    client = require_engine()
    toolbox = ensure_toolbox(client)
    large = max(0, args.mib - args.small * 4 // 1024) // 64
    fill = (f"mkdir -p /data/small && i=0; while [ $i -lt {args.small} ]; do "
            f"head -c 4096 /dev/urandom > /data/small/f$i; i=$((i+1)); done; "
            f"j=0; while [ $j -lt {large} ]; do head -c 67108864 /dev/urandom > /data/big$j; "
            f"j=$((j+1)); done; sleep 100000")
    target = client.containers.run(toolbox, ["sh", "-c", fill], detach=True,
                                   labels={"io.distrodebug.test": "1"})
    env = {**os.environ, "DISTRODEBUG_IMAGE": toolbox}
    try:
        deadline = time.time() + 900
        while time.time() < deadline:
            ps = client.containers.get(target.id).top()["Processes"]
            if any("sleep" in " ".join(p) for p in ps) and not any("head" in " ".join(p) for p in ps):
                break
            time.sleep(2)
        with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
            runs = {
                "docker export > file": (["docker", "export", target.id], Path(tmp) / "e.tar"),
                "distrodebug dump (.tar)": (
                    ["distrodebug", "dump", target.id, "-o", f"{tmp}/d.tar", "--path", "/data"], None),
                "distrodebug dump (.tar.zst)": (
                    ["distrodebug", "dump", target.id, "-o", f"{tmp}/d.tar.zst", "--path", "/data"],
                    None),
            }
            results = {}
            for name, (argv, out) in runs.items():
                best = min((timed(argv, out, env) for _ in range(2)), key=lambda r: r[0])
                results[name] = best
                for leftover in Path(tmp).iterdir():
                    leftover.unlink()
    finally:
        target.remove(force=True)
    size = args.mib * (1 << 20)
    base = results["docker export > file"][0]
    for name, (seconds, rss) in results.items():
        print(f"{name:30s} {seconds:6.2f} s  {size / seconds / 1e6:7.1f} MB/s  "
              f"peak RSS {rss / 1024:6.1f} MiB  throughput ratio {base / seconds:.2f}x")
    print("(export covers the whole root, the dump /data only: the data set dominates both)")


if __name__ == "__main__":
    main()
