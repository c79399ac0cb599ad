"""`distrodebug cp` on distroless Docker targets: both ways, running and stopped."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.engine import changes, engine_differs

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("no_leftovers")]
EVERY_BYTE = bytes(range(256)) * 64


def test_round_trip_running_nonroot(dd: Any, make_container: Any, python_image: str,
                                    tmp_path: Path) -> None:
    target = make_container(python_image, user="65532")
    (tmp_path / "every-byte.bin").write_bytes(EVERY_BYTE)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(1 << 20) * 24)
    assert dd("cp", str(tmp_path / "every-byte.bin"), f"{target.name}:/tmp/").code == 0
    assert dd("cp", str(big), f"{target.name}:/tmp/renamed.bin").code == 0
    ls = dd("exec", target.name, "--", "ls", "-ln", "/tmp").out
    assert " 65532 " in ls and "every-byte.bin" in ls and "renamed.bin" in ls
    out = tmp_path / "back"
    out.mkdir()
    ran = dd("cp", f"{target.name}:/tmp/every-byte.bin", str(out))
    assert ran.code == 0, ran.err
    assert (out / "every-byte.bin").read_bytes() == EVERY_BYTE
    assert dd("cp", f"{target.name}:/tmp/renamed.bin", str(out / "big")).code == 0
    assert (out / "big").read_bytes() == big.read_bytes()
    ran = dd("cp", f"{target.name}:/app", str(out / "app"))
    assert ran.code == 0 and (out / "app" / "app.py").exists()


@engine_differs("podman", "it mounts a writable tmpfs on /tmp of a read-only container "
                "(read_only_tmpfs), so a copy into /tmp succeeds there")
def test_write_respects_permissions_and_read_only_root(dd: Any, make_container: Any,
                                                       python_image: str, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    nonroot = make_container(python_image, user="65532")
    ran = dd("cp", str(tmp_path / "f"), f"{nonroot.name}:/etc/")
    assert ran.code == 125 and "may not write to '/etc'" in ran.err
    readonly = make_container(python_image, read_only=True)
    ran = dd("cp", str(tmp_path / "f"), f"{readonly.name}:/tmp/")
    assert ran.code == 125 and "read-only" in ran.err
    assert changes(readonly) == []
    ran = dd("cp", f"{readonly.name}:/nope", str(tmp_path))
    assert ran.code == 2 and "does not exist" in ran.err


def test_symlinks_stay_inside_the_target(dd: Any, make_container: Any, toolbox: str,
                                         tmp_path: Path) -> None:
    target = make_container(toolbox, command=["sh", "-c",
                            "mkdir -p /data && echo target-secret > /data/s && "
                            "ln -s /data /link && exec sleep 1000"])
    out = tmp_path / "out"
    out.mkdir()
    ran = dd("cp", f"{target.name}:/link/s", str(out))
    assert ran.code == 0, ran.err
    assert (out / "s").read_text() == "target-secret\n"
    # The link itself is copied as a link, never followed (docker cp does the same).
    ran = dd("cp", f"{target.name}:/link", str(out))
    assert ran.code == 0, ran.err
    assert os.readlink(out / "link") == "/data" and not (out / "data").exists()


def test_stopped_container_both_ways(dd: Any, make_container: Any, static_image: str,
                                     tmp_path: Path) -> None:
    target = make_container(static_image)
    target.stop(timeout=2)
    (tmp_path / "note.txt").write_text("left for review\n")
    assert dd("cp", str(tmp_path / "note.txt"), f"{target.name}:/tmp/").code == 0
    out = tmp_path / "out"
    out.mkdir()
    ran = dd("cp", f"{target.name}:/tmp/note.txt", str(out))
    assert ran.code == 0, ran.err
    assert (out / "note.txt").read_text() == "left for review\n"
    target.reload()
    assert target.status == "exited"


def test_usage_errors(dd: Any, tmp_path: Path) -> None:
    assert dd("cp", "a", "b").code == 2
    assert dd("cp", "web:relative", str(tmp_path)).code == 2
