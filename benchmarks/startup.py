"""Time to result of `distrodebug exec T -- true`, first and repeated, against a raw `docker run`
of the same sidecar; `distrodebug --help` against `python3 -c 'import typer'`; and the engine
requests each one sends. Prints medians of alternating runs and the ratios (issue 12).

    python3 benchmarks/startup.py [--runs 15]

Needs a running engine and the test images (built on first use, as in the tests). Requests are
counted by a relay socket between the client and the engine (DOCKER_HOST points at it for both
the docker CLI and us), so both sides are counted the same way.

Rows:
- first exec: no warm sidecar for the target (removed, untimed, before each run), so the run
  starts one and execs into it;
- repeated exec: a warm sidecar of ours runs (runtimes/docker/warm.py): one exec into it.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fixtures.engine import require_engine  # noqa: E402
from tests.fixtures.images import ensure_static_target, ensure_toolbox  # noqa: E402

_REQUEST = re.compile(rb"(?:GET|POST|HEAD|PUT|DELETE) /\S* HTTP/1\.[01]\r\n")


class CountingRelay:
    """A Unix socket that relays to the engine's and counts the HTTP requests sent through it."""

    def __init__(self, engine_socket: str) -> None:
        self.path = os.path.join(tempfile.mkdtemp(prefix="dd-bench-"), "docker.sock")
        self._engine = engine_socket
        self._server = socket.socket(socket.AF_UNIX)
        self._server.bind(self.path)
        self._server.listen(64)
        self.requests = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self._server.accept()
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self._engine)
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, count: bool) -> None:
        tail = b""
        try:
            while data := src.recv(1 << 16):
                if count:
                    seen = tail + data
                    with self._lock:
                        self.requests += len(_REQUEST.findall(seen)) - len(_REQUEST.findall(tail))
                    tail = seen[-64:]
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def counted(self, run: Callable[[], Any]) -> int:
        before = self.requests
        run()
        time.sleep(0.2)  # the last answers drain
        return self.requests - before


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    # As installed by pip, which compiles every module: this machine sets PYTHONDONTWRITEBYTECODE,
    # and an editable checkout would otherwise compile ours from source on every run (~40 ms).
    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(root / "distrodebug")], check=True)
    client = require_engine()
    toolbox = ensure_toolbox(client)
    target = client.containers.run(ensure_static_target(client, nonroot=False), detach=True,
                                   labels={"io.distrodebug.test": "1"})
    env = {**os.environ, "DISTRODEBUG_IMAGE": toolbox}
    raw = ["docker", "run", "--rm", f"--pid=container:{target.id}",
           f"--network=container:{target.id}", toolbox, "true"]
    ours = ["distrodebug", "exec", target.id, "--", "true"]

    def drop_warm() -> None:
        for c in client.api.containers(filters={"label": "io.distrodebug.role=warm"}):
            if target.id in str(client.api.inspect_container(c["Id"])["HostConfig"]["PidMode"]):
                client.api.remove_container(c["Id"], force=True)
        time.sleep(0.3)

    cases: dict[str, tuple[list[str], Callable[[], None] | None]] = {
        "docker run --rm (pid+net join) true": (raw, None),
        "distrodebug exec T -- true (first)": (ours, drop_warm),
        "distrodebug exec T -- true (repeated)": (ours, None),
        "python3 -c 'import typer'": ([sys.executable, "-c", "import typer"], None),
        "distrodebug --help": (["distrodebug", "--help"], None),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    try:
        for argv, _ in cases.values():
            timed(argv, env)  # warm the page cache and the engine
        for _ in range(args.runs):
            for name, (argv, before) in cases.items():
                if before is not None:
                    before()
                times[name].append(timed(argv, env))
        relay = CountingRelay("/var/run/docker.sock")
        counted = {**env, "DOCKER_HOST": f"unix://{relay.path}"}
        requests = {
            "docker run": relay.counted(lambda: timed(raw, counted)),
            "ours, first": (drop_warm(), relay.counted(lambda: timed(ours, counted)))[1],
            "ours, repeated": relay.counted(lambda: timed(ours, counted)),
        }
    finally:
        drop_warm()
        target.remove(force=True)
    med = {name: statistics.median(values) for name, values in times.items()}
    for name, seconds in med.items():
        print(f"{name:42s} median {seconds * 1000:7.1f} ms  ({args.runs} runs)")
    names = list(med)
    print(f"first exec ratio     {med[names[1]] / med[names[0]]:.2f}x  (goal <= 1.10x)")
    print(f"repeated exec ratio  {med[names[2]] / med[names[0]]:.2f}x  (goal <= 0.70x)")
    print(f"--help ratio         {med[names[4]] / med[names[3]]:.2f}x  (goal <= 1.30x)")
    print("engine requests      " + ", ".join(f"{k}: {v}" for k, v in requests.items()))


if __name__ == "__main__":
    main()
