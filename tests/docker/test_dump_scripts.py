"""The dump's sidecar scripts against a real engine and a hostile target.

A throwaway busybox image (the host's static busybox, every applet hard-linked) serves as both
target and toolbox. The target has a volume, a bind mount, a tmpfs, a symlink loop, an absolute
symlink to /etc, a FIFO, a device node, a 2 GiB sparse file, a file growing and a file being
rewritten during the dump; it runs as uid 65532, so the sidecar needs CAP_SYS_PTRACE.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from distrodebug.bundle.format import verify_bundle
from distrodebug.bundle.options import DumpOptions
from distrodebug.bundle.procinfo import COLLECT_SCRIPT, parse_collect
from distrodebug.bundle.script import fs_stream_script, parse_skip_lines
from distrodebug.bundle.writer import DumpInfo, SkippedEntry, write_bundle
from tests.unit.bundle.test_format import entries, read_manifest

pytestmark = pytest.mark.engine
LABELS = {"io.distrodebug.test": "1"}

TARGET_SCRIPT = """
set -e
echo vol > /data/v.txt
mkfifo /srv/fifo
mknod /srv/nul c 1 3
ln -s loop /srv/loop
ln -s /etc /srv/abs
truncate -s 2G /srv/sparse
echo stash > /scratch/t
mkdir -p /srv/app && echo 'print(1)' > /srv/app/main.py
chown -R 65532:65532 /srv /scratch
# From here on the target (PID 1 included) runs as uid 65532, as distroless images do.
exec su -s /bin/sh nonroot -c '
httpd -p 8080 -h /srv/app
touch /tmp/ready
while :; do
  echo line >> /srv/grow
  head -c 3000000 /dev/zero > /srv/shrink
  : > /srv/shrink
done'
"""


def _engine() -> Any:
    """The lane's engine client, or skip (fail when DISTRODEBUG_REQUIRE_ENGINE=1)."""
    from tests.fixtures.engine import require_engine

    return require_engine()


@pytest.fixture(scope="module")
def client() -> Any:
    return _engine()


@pytest.fixture(scope="module")
def image(client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    busybox = shutil.which("busybox")
    if busybox is None or b"statically linked" not in subprocess.run(
        ["file", "-L", busybox], capture_output=True
    ).stdout.replace(b"static-pie linked", b"statically linked"):
        pytest.skip("a static busybox is needed on the host (apt-get install busybox-static)")
    root = tmp_path_factory.mktemp("bbroot")
    for sub in ("bin", "etc", "tmp", "proc", "sys", "dev", "data", "srv", "scratch", "bind"):
        (root / sub).mkdir()
    shutil.copy(busybox, root / "bin/busybox")
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True).stdout.split()
    for applet in applets:
        if applet != "busybox":
            os.link(root / "bin/busybox", root / "bin" / applet)
    (root / "etc/passwd").write_text("root:x:0:0::/:/bin/sh\nnonroot:x:65532:65532::/:/bin/sh\n")
    os.chmod(root / "tmp", 0o1777)
    for sub in ("srv", "data", "scratch"):
        os.chown(root / sub, 65532, 65532)
    rootfs = tmp_path_factory.mktemp("bbtar") / "rootfs.tar"
    with tarfile.open(rootfs, mode="w") as tar:
        tar.add(root, arcname=".")
    tag = f"distrodebug-test-dumpbb:{uuid.uuid4().hex[:8]}"
    from distrodebug.runtimes.docker.runtime import DockerRuntime

    DockerRuntime().import_image(rootfs, tag, ["LABEL io.distrodebug.test=1"])  # engine quirks there
    yield tag
    client.images.remove(tag, force=True)


@pytest.fixture(scope="module")
def target(client: Any, image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    bind = tmp_path_factory.mktemp("bind")
    (bind / "b.txt").write_text("bound\n")
    volume = client.volumes.create(name=f"ddtest-{uuid.uuid4().hex[:8]}", labels=LABELS)
    container = client.containers.run(
        image,
        ["sh", "-c", TARGET_SCRIPT],
        detach=True,
        labels=LABELS,
        volumes={volume.name: {"bind": "/data", "mode": "rw"}, str(bind): {"bind": "/bind"}},
        tmpfs={"/scratch": ""},
    )
    try:
        _wait_ready(container)
        yield container
    finally:
        container.remove(force=True)
        volume.remove(force=True)


def _wait_ready(container: Any) -> None:
    for _ in range(100):
        if container.exec_run(["test", "-e", "/srv/grow"]).exit_code == 0:
            return
        container.reload()
        if container.status != "running":
            break
        time.sleep(0.1)
    raise AssertionError(f"target did not start: {container.logs().decode(errors='replace')}")


def _run_sidecar(
    client: Any,
    image: str,
    target: Any,
    script: str,
    sink: Any,
    errors: list[str],
    cap_drop: list[str] | None = None,
) -> int:
    """Run ``script`` in a sidecar; stdout goes to ``sink`` as it comes, stderr lines to errors."""
    from docker.utils.socket import frames_iter

    api = client.api
    sidecar = api.create_container(
        image,
        ["sh", "-c", script],
        labels=LABELS,
        host_config=api.create_host_config(
            pid_mode=f"container:{target.id}",
            network_mode=f"container:{target.id}",
            cap_add=["SYS_PTRACE"],
            cap_drop=cap_drop,
            log_config={"type": "none"},
        ),
    )["Id"]
    try:
        sock = api.attach_socket(sidecar, params={"stdout": 1, "stderr": 1, "stream": 1})
        api.start(sidecar)
        pending = ""
        for stream, data in frames_iter(sock, tty=False):
            if stream == 1:
                sink.write(data)
            else:
                pending += data.decode("utf-8", "surrogateescape")
                *lines, pending = pending.split("\n")
                errors.extend(lines)
        if pending:
            errors.append(pending)
        sock._sock.close()
        return int(api.wait(sidecar)["StatusCode"])
    finally:
        api.remove_container(sidecar, force=True)


def _dump(
    client: Any,
    image: str,
    target: Any,
    out: Path,
    options: DumpOptions,
    cap_drop: list[str] | None = None,
) -> dict[str, Any]:
    """Stream the sidecar's stdout straight into write_bundle through a pipe."""
    read_fd, write_fd = os.pipe()
    errors: list[str] = []
    info = DumpInfo(target={"container_id": target.id, "name": target.name})
    status: list[int] = []

    def pump() -> None:
        with open(write_fd, "wb") as sink:
            script = fs_stream_script(options)
            status.append(_run_sidecar(client, image, target, script, sink, errors, cap_drop))

    thread = threading.Thread(target=pump)
    thread.start()
    with open(read_fd, "rb") as source:
        # The stderr reader keeps appending; write_bundle reads info.skipped after the stream.
        info.skipped = _LiveSkips(errors)  # type: ignore[assignment]
        write_bundle(out, source, info, options)
    thread.join()
    assert status == [0], errors
    chrooted = not [e for e in errors if e.startswith("DDINFO\tnochroot")]
    assert chrooted is (cap_drop is None), errors
    manifest = read_manifest(out)
    assert verify_bundle(out).ok
    return manifest


class _LiveSkips(list[SkippedEntry]):
    """info.skipped that parses stderr lines at the moment write_bundle reads it."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__()
        self._lines = lines

    def __iter__(self) -> Iterator[SkippedEntry]:
        return iter(parse_skip_lines(self._lines))


def test_dump_a_hostile_target(client: Any, image: str, target: Any, tmp_path: Path) -> None:
    before = sorted((c["Path"], c["Kind"]) for c in target.diff())
    started = time.monotonic()
    manifest = _dump(client, image, target, tmp_path / "t.tar.zst", DumpOptions())
    assert time.monotonic() - started < 60  # no hang on the FIFO or the sparse file
    by_path = entries(manifest)
    assert by_path["data/v.txt"]["status"] == "ok"  # volume
    assert by_path["bind/b.txt"]["status"] == "ok"  # bind mount
    assert by_path["scratch/t"]["status"] == "ok"  # tmpfs: only this route sees it
    assert by_path["srv/loop"] == {**by_path["srv/loop"], "type": "symlink", "link": "loop"}
    assert by_path["srv/abs"]["link"] == "/etc" and "srv/abs/passwd" not in by_path
    assert by_path["srv/fifo"]["status"] == "skipped" and by_path["srv/fifo"]["reason"] == "fifo"
    assert by_path["srv/nul"]["reason"] == "device node"
    sparse = by_path["srv/sparse"]
    assert sparse["status"] == "skipped" and "maximum file size" in sparse["reason"]
    assert sparse["size"] == 2 << 30
    assert by_path["srv/grow"]["status"] == "ok"
    assert by_path["srv/shrink"]["status"] in ("ok", "partial")
    assert not any(p == "proc" or p.startswith(("proc/", "sys/", "dev/pts/")) for p in by_path)
    assert "dev/shm" in by_path and "etc/hosts" in by_path
    after = sorted((c["Path"], c["Kind"]) for c in target.diff())
    assert after == before  # nothing written to the target


def test_dump_without_volumes(client: Any, image: str, target: Any, tmp_path: Path) -> None:
    options = DumpOptions(no_volumes=True, excludes=("bin",), paths=("/",))
    by_path = entries(_dump(client, image, target, tmp_path / "n.tar", options))
    assert not any(p.startswith(("data/", "bind/", "scratch/")) for p in by_path)
    assert "etc/hosts" in by_path and "etc/passwd" in by_path
    assert not any(p.startswith("bin/") for p in by_path)


def test_dump_without_chroot(client: Any, image: str, target: Any, tmp_path: Path) -> None:
    """Without CAP_SYS_CHROOT the script walks /proc/PID/root directly, with the same result."""
    options = DumpOptions(paths=("/srv", "/data"))
    out = tmp_path / "c.tar"
    by_path = entries(_dump(client, image, target, out, options, cap_drop=["SYS_CHROOT"]))
    assert by_path["srv/abs"]["link"] == "/etc" and by_path["data/v.txt"]["status"] == "ok"
    assert by_path["srv/fifo"]["reason"] == "fifo" and by_path["srv/sparse"]["status"] == "skipped"


def test_dump_selected_paths(client: Any, image: str, target: Any, tmp_path: Path) -> None:
    options = DumpOptions(paths=("/srv/app", "/etc/passwd"))
    by_path = entries(_dump(client, image, target, tmp_path / "p.tar.gz", options))
    assert set(by_path) == {"srv/app", "srv/app/main.py", "etc/passwd"}


def test_collect_processes_and_sockets(client: Any, image: str, target: Any) -> None:
    out = io.BytesIO()
    errors: list[str] = []
    assert _run_sidecar(client, image, target, COLLECT_SCRIPT, out, errors) == 0, errors
    collected = parse_collect(out.getvalue().decode("utf-8", "surrogateescape"))
    assert collected.complete
    by_name = {" ".join(p["cmdline"][:1]): p for p in collected.processes}
    httpd = next(p for p in collected.processes if p["cmdline"][:1] == ["httpd"])
    assert httpd["uid"] == 65532 and httpd["cwd"] == "/srv/app"
    assert collected.processes[0]["pid"] == 1 and "sh" in by_name
    assert not any(p["cmdline"][2:3] == [COLLECT_SCRIPT] for p in collected.processes)
    listen = [s for s in collected.sockets if s.get("local_port") == 8080 and s["state"] == "LISTEN"]
    assert listen and listen[0]["processes"][0]["pid"] == httpd["pid"]
    assert any(m["mount_point"] == "/data" for m in collected.mounts)


def test_file_shrinking_while_read(client: Any, image: str, tmp_path: Path) -> None:
    """busybox tar dies mid-file when a file shrinks; the stream must recover at the next batch."""
    script = (
        "mkdir /w; for i in $(seq 1 200); do echo $i > /w/f$i; done;"
        # Whole for a moment, then emptied: a read that starts in that moment meets the
        # truncation (a file always growing would be read up to its size at stat time).
        " while :; do head -c 100000000 /dev/zero > /w/big; sleep 0.2; : > /w/big; done"
    )
    victim = client.containers.run(image, ["sh", "-c", script], detach=True, labels=LABELS)
    try:
        while victim.exec_run(["test", "-e", "/w/big"]).exit_code != 0:
            time.sleep(0.1)
        statuses = []
        deadline = time.monotonic() + 120  # a race by nature: as many tries as two minutes allow
        for attempt in range(60):
            bundle = tmp_path / f"s{attempt}.tar"
            by_path = entries(_dump(client, image, victim, bundle, DumpOptions(paths=("/w",))))
            bundle.unlink()  # up to 100 MB each, and many tries
            assert {f"w/f{i}" for i in range(1, 201)} <= set(by_path)
            statuses.append(by_path.get("w/big", {}).get("status"))
            if "partial" in statuses or time.monotonic() > deadline:
                break
        assert "partial" in statuses, statuses
    finally:
        victim.remove(force=True)
