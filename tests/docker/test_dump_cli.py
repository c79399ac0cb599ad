"""`dump`, `verify`, `extract`, `report` end to end on the real engine."""

from __future__ import annotations

import json
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest
import zstandard

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("no_leftovers")]


def _wait_listening(target: Any, port: int, seconds: float = 20.0) -> None:
    """Until the target listens on ``port`` (its /proc/PID/net/tcp seen from this host): the
    dump reads processes and sockets first thing (order of volatility), right after the start."""
    table = Path(f"/proc/{target.attrs['State']['Pid']}/net/tcp")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            rows = [line.split() for line in table.read_text().splitlines()[1:]]
        except OSError:
            time.sleep(1)  # not on this host's /proc (a remote engine): give the app a moment
            return
        if any(row[1].endswith(f":{port:04X}") and row[3] == "0A" for row in rows):
            return
        time.sleep(0.05)


def test_dump_running_target_with_volume(dd: Any, make_container: Any, python_image: str,
                                         tmp_path: Path) -> None:
    host = tmp_path / "bound"
    host.mkdir()
    (host / "evidence.log").write_text("intruder was here\n")
    target = make_container(python_image, user="65532", read_only=True,
                            environment={"DB_PASSWORD": "hunter2", "MODE": "prod"},
                            volumes={str(host): {"bind": "/data", "mode": "ro"}})
    _wait_listening(target, 8080)
    before = target.diff()
    bundle = tmp_path / "incident.tar.zst"
    ran = dd("dump", target.name, "-f", str(bundle), "--path", "/app", "--path", "/data",
             "--path", "/etc/passwd")
    assert ran.code == 0, ran.err
    digest = ran.out.split()[0]
    assert digest.startswith("sha256:") and (bundle.stat().st_mode & 0o777) == 0o600
    assert target.diff() == before

    verified = dd("verify", str(bundle))
    assert verified.code == 0 and verified.out.startswith(f"OK {digest}")

    with zstandard.open(bundle, "rb") as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
        members = {m.name: (tar.extractfile(m).read() if m.isfile() else b"") for m in tar}
    assert members["fs/data/evidence.log"] == b"intruder was here\n"
    assert "fs/app/app.py" in members
    env = members["meta/environment.json"].decode()
    assert "hunter2" not in env and "MODE=prod" in env
    assert "hunter2" not in members["meta/inspect.json"].decode()
    processes = json.loads(members["meta/processes.json"])
    assert [p["cmdline"] for p in processes] == [["/usr/bin/python3.11", "app.py"]]
    # The live environment is read with the processes, and redacted like the declared one.
    assert "MODE=prod" in processes[0]["environ"] and "DB_PASSWORD=***REDACTED***" in processes[0]["environ"]
    assert "hunter2" not in members["meta/processes.json"].decode()
    assert any(s.get("local_port") == 8080 for s in json.loads(members["meta/sockets.json"]))

    out = tmp_path / "out"
    extracted = dd("extract", str(bundle), str(out))
    assert extracted.code == 0, extracted.err
    assert (out / "data" / "evidence.log").read_text() == "intruder was here\n"

    html = tmp_path / "report.html"
    reported = dd("report", str(bundle), "--html", str(html))
    assert reported.code == 0 and "python3.11" in reported.out
    assert "<html" in html.read_text().lower()


def test_tampered_bundle_fails_verify(dd: Any, make_container: Any, static_image: str,
                                      tmp_path: Path) -> None:
    target = make_container(static_image)
    bundle = tmp_path / "b.tar"
    assert dd("dump", target.name, "-f", str(bundle)).code == 0
    data = bytearray(bundle.read_bytes())
    with tarfile.open(bundle) as tar:
        app = tar.getmember("fs/app")
    data[app.offset_data + 100] ^= 0xFF
    bundle.write_bytes(bytes(data))
    ran = dd("verify", str(bundle))
    assert ran.code == 1 and "fs/app" in ran.err and ran.out.startswith("MISMATCH")


def test_dump_stopped_container_and_image(dd: Any, make_container: Any, static_image: str,
                                          tmp_path: Path) -> None:
    target = make_container(static_image)
    target.stop(timeout=2)
    bundle = tmp_path / "stopped.tar.gz"
    ran = dd("dump", target.name, "-f", str(bundle))
    assert ran.code == 0, ran.err
    assert "archive API" in ran.err
    assert dd("verify", str(bundle)).code == 0
    image_bundle = tmp_path / "image.tar"
    ran = dd("dump", "--image-target", static_image, "-f", str(image_bundle))
    assert ran.code == 0, ran.err
    with tarfile.open(image_bundle) as tar:
        assert "fs/app" in tar.getnames()


def test_dump_errors_leave_no_partial_file(dd: Any, tmp_path: Path) -> None:
    ran = dd("dump", "no-such-container-xyz", "-f", str(tmp_path / "x.tar"))
    assert ran.code == 125 and "Traceback" not in ran.err
    assert list(tmp_path.iterdir()) == []
    assert dd("verify", str(tmp_path / "missing.tar")).code != 0
    # A directory named as the bundle is the command line's mistake (2), said before the target
    # is looked up, and the directory is left as it was.
    (tmp_path / "d").mkdir()
    ran = dd("dump", "no-such-container-xyz", "-f", str(tmp_path / "d"))
    assert ran.code == 2 and "is a directory" in ran.err and "Traceback" not in ran.err
    assert list((tmp_path / "d").iterdir()) == []
