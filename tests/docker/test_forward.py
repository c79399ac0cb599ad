"""forward: a loopback-only HTTP server in the shell-less Python target, reached from here by 50
concurrent requests with byte-exact bodies; Ctrl-C removes the relay."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

# Each GET /N answers N * 997 + 1 pseudo-random bytes that both sides can compute.
SERVER = r"""
import hashlib, http.server
def body(n):
    out, seed = bytearray(), str(n).encode()
    while len(out) < n * 997 + 1:
        seed = hashlib.sha256(seed).digest(); out += seed
    return bytes(out[: n * 997 + 1])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        data = body(int(self.path.strip('/') or 0))
        self.send_response(200); self.send_header('Content-Length', str(len(data)))
        self.end_headers(); self.wfile.write(data)
    def log_message(self, *a): pass
print('listening', flush=True)
http.server.ThreadingHTTPServer(('127.0.0.1', 8000), H).serve_forever()
"""


def body(n: int) -> bytes:
    out, seed = bytearray(), str(n).encode()
    while len(out) < n * 997 + 1:
        seed = hashlib.sha256(seed).digest()
        out += seed
    return bytes(out[: n * 997 + 1])


def test_forward_serves_50_concurrent_requests_to_a_loopback_only_server(
        engine: Any, toolbox: str, make_container: Any, python_image: str,
        no_leftovers: None) -> None:
    app = make_container(python_image, command=["-u", "-c", SERVER], user="65532")
    deadline = time.monotonic() + 20
    while b"listening" not in app.logs() and time.monotonic() < deadline:
        time.sleep(0.1)
    proc = subprocess.Popen([sys.executable, "-m", "distrodebug", "forward", app.name, "0:8000"],
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                            env={**os.environ, "DISTRODEBUG_IMAGE": toolbox})
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        found = re.search(r"forwarding 127\.0\.0\.1:(\d+) ", line)
        assert found, line
        port = int(found[1])
        relays = engine.containers.list(filters={"label": "io.distrodebug.role=forward"})
        # No capability at all (Podman lists the dropped ones where Docker says ALL: ask the kernel).
        pids = [r.attrs["State"]["Pid"] for r in relays if app.id in r.attrs["HostConfig"]["NetworkMode"]]
        assert len(pids) == 1
        with open(f"/proc/{pids[0]}/status") as status:
            assert re.search(r"^CapBnd:\s*0+$", status.read(), re.M)

        def get(n: int) -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/{n}", timeout=60) as reply:
                return bool(reply.read() == body(n))

        with ThreadPoolExecutor(50) as pool:
            results = list(pool.map(get, range(1, 51)))
        assert all(results), f"{results.count(False)} of 50 bodies differ"
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "relay was removed" in err
    left = engine.containers.list(all=True, filters={"label": "io.distrodebug.role=forward"})
    assert not [r for r in left if app.id in r.attrs["HostConfig"]["NetworkMode"]]


def test_forward_refuses_bad_ports_with_a_usage_error(dd: Any) -> None:
    ran = dd("forward", "web", "80:x")
    assert ran.code == 2 and "[LOCAL:]REMOTE_PORT" in ran.err and "Traceback" not in ran.err


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_names_containers(make_container: Any, python_image: str, shell: str) -> None:
    from tests.unit.cli.test_completion import complete

    app = make_container(python_image)
    words = f"distrodebug shell {app.name[:9]}"
    out = complete(shell, words, 2) if shell == "bash" else complete(shell, words)
    assert app.name in re.findall(r"[\w.-]+", out), out
