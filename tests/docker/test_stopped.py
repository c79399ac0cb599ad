"""Stopped, crash-looping targets and plain images are debugged through a throwaway copy."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("no_leftovers")]


def test_exited_container_keeps_writable_layer_and_volumes(dd: Any, make_container: Any,
                                                           static_image: str, engine: Any,
                                                           tmp_path: Any) -> None:
    (tmp_path / "bound.txt").write_text("from the host\n")
    target = make_container(static_image, volumes={str(tmp_path): {"bind": "/data", "mode": "rw"}})
    # Put a file in the writable layer through the archive API (the image has no shell).
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("written-at-runtime.txt")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    target.put_archive("/tmp", buf.getvalue())
    target.stop(timeout=2)
    ran = dd("exec", target.name, "--", "sh", "-c",
             "cat /tmp/written-at-runtime.txt; echo; cat /data/bound.txt; "
             "echo x > /data/new 2>/dev/null && echo WROTE || echo READONLY")
    assert ran.code == 0, ran.err
    assert ran.out.splitlines() == ["hello", "from the host", "READONLY"]
    target.reload()
    assert target.status == "exited"


def test_crash_looping_container(dd: Any, make_container: Any, toolbox: str, engine: Any) -> None:
    # A toolbox container whose command fails at once, restarted forever by the engine.
    target = make_container(toolbox, command=["sh", "-c", "echo crash > /tmp/last; exit 3"],
                            restart_policy={"Name": "always"})
    import time

    deadline = time.time() + 20
    while time.time() < deadline:
        target.reload()
        if target.attrs["RestartCount"] >= 1:
            break
        time.sleep(0.2)
    ran = dd("exec", target.name, "--", "cat", "/tmp/last")
    assert ran.code == 0, ran.err
    assert ran.out == "crash\n"


def test_plain_image(dd: Any, static_image: str) -> None:
    ran = dd("exec", "--image-target", static_image, "--", "ls", "/")
    assert ran.code == 0, ran.err
    assert "app" in ran.out.split()
