"""Dump throughput with hashing against `docker export > file`, and the dump's peak RSS.

    python3 benchmarks/dump_throughput.py [--mib 1024] [--small 20000] [--rounds 3]

Makes a toolbox container whose writable layer holds MIB mebibytes: SMALL files of 4 KiB and
the rest in 64 MiB files of random data, then times, on the same container and interleaved
round by round (the machine's load drifts), `docker export > file`, the bare attach route (a
sidecar's busybox tar read from Docker's attach socket and thrown away: the ceiling of any dump
through the sidecar) and `distrodebug dump` to .tar and .tar.zst. Prints each round, then
medians; a ratio is the median of the per-round ratios to export. CPU is the command's own user +
system seconds (the engine's share is not in it): on a busy shared machine it moves far less
than the wall time.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fixtures.engine import require_engine  # noqa: E402
from tests.fixtures.images import ensure_toolbox  # noqa: E402

LABELS = {"io.distrodebug.test": "1"}


def timed(argv: list[str], out: Path | None, env: dict[str, str]) -> tuple[float, float, float]:
    """Seconds, peak RSS (MiB) and CPU seconds of a command, its stdout to ``out``."""
    start = time.perf_counter()
    with open(out, "wb") if out else open(os.devnull, "wb") as sink:
        proc = subprocess.run(["/usr/bin/time", "-v", *argv], stdout=sink, stderr=subprocess.PIPE,
                              env=env, check=True)
    seconds = time.perf_counter() - start
    found = re.search(rb"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    assert found is not None
    cpu = sum(float(x) for x in re.findall(rb"(?:User|System) time \(seconds\): ([\d.]+)", proc.stderr))
    return seconds, int(found.group(1)) / 1024, cpu


def attach_only(client: Any, toolbox: str, target_id: str) -> tuple[float, float, float]:
    """The sidecar route with a trivial consumer: busybox tar of /data, read and counted."""
    api = client.api
    host = api.create_host_config(pid_mode=f"container:{target_id}",
                                  network_mode=f"container:{target_id}",
                                  log_config={"Type": "none", "Config": {}})
    sidecar = api.create_container(toolbox, ["sh", "-c", "cd /proc/1/root && tar c data"],
                                   labels=LABELS, host_config=host)["Id"]
    try:
        sock = api.attach_socket(sidecar, params={"stdout": 1, "stderr": 1, "stream": 1})
        raw = getattr(sock, "_sock", sock)
        raw.settimeout(None)
        buffer = memoryview(bytearray(1 << 20))
        start, total = time.perf_counter(), 0
        api.start(sidecar)
        while size := raw.recv_into(buffer):
            total += size
        seconds = time.perf_counter() - start
        raw.close()
        api.wait(sidecar)
    finally:
        api.remove_container(sidecar, force=True)
    return seconds, float("nan"), float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--small", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    client = require_engine()
    toolbox = ensure_toolbox(client)
    large = max(0, args.mib - args.small * 4 // 1024) // 64
    fill = (f"mkdir -p /data/small && i=0; while [ $i -lt {args.small} ]; do "
            f"head -c 4096 /dev/urandom > /data/small/f$i; i=$((i+1)); done; "
            f"j=0; while [ $j -lt {large} ]; do head -c 67108864 /dev/urandom > /data/big$j; "
            f"j=$((j+1)); done; sleep 100000")
    target = client.containers.run(toolbox, ["sh", "-c", fill], detach=True, labels=LABELS)
    env = {**os.environ, "DISTRODEBUG_IMAGE": toolbox}
    results: dict[str, list[tuple[float, float, float, float]]] = {}
    try:
        deadline = time.time() + 900
        while time.time() < deadline:
            ps = client.containers.get(target.id).top()["Processes"]
            if any("sleep" in " ".join(p) for p in ps) and not any("head" in " ".join(p) for p in ps):
                break
            time.sleep(2)
        size = args.mib * (1 << 20)  # as the figures were computed
        with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
            runs: dict[str, Callable[[], tuple[float, float, float]]] = {
                "docker export > file": lambda: timed(["docker", "export", target.id],
                                                      Path(tmp) / "e.tar", env),
                "attach route only": lambda: attach_only(client, toolbox, target.id),
                "distrodebug dump (.tar)": lambda: timed(
                    ["distrodebug", "dump", target.id, "-f", f"{tmp}/d.tar", "--path", "/data"],
                    None, env),
                "distrodebug dump (.tar.zst)": lambda: timed(
                    ["distrodebug", "dump", target.id, "-f", f"{tmp}/d.tar.zst", "--path", "/data"],
                    None, env),
            }
            for round_ in range(args.rounds):
                base = 0.0
                line = []
                for name, run in runs.items():
                    seconds, rss, cpu = run()
                    base = base or seconds
                    results.setdefault(name, []).append((seconds, rss, base / seconds, cpu))
                    line.append(f"{name.split(' (')[-1].rstrip(')')} {seconds:.2f}s")
                    for leftover in Path(tmp).iterdir():
                        leftover.unlink()
                print(f"round {round_ + 1}: " + ", ".join(line), flush=True)
    finally:
        target.remove(force=True)
    print(f"{args.mib} MiB requested; medians of {args.rounds} rounds:")
    for name, rows in results.items():
        seconds = statistics.median(r[0] for r in rows)
        ratio = statistics.median(r[2] for r in rows)
        rss = max(r[1] for r in rows)
        cpu = statistics.median(r[3] for r in rows)
        memory = f"peak RSS {rss:6.1f} MiB  CPU {cpu:5.2f} s" if rss == rss else " " * 32
        print(f"{name:30s} {seconds:6.2f} s  {size / seconds / 1e6:7.1f} MB/s  {memory}  "
              f"ratio to export {ratio:.2f}x")
    print("(export covers the whole root, the others /data only: the data set dominates all)")


if __name__ == "__main__":
    main()
