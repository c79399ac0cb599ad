"""The writer's side-file hook (dump --memory's cores): stored, hashed, checked by verify."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from distrodebug.bundle.format import verify_bundle
from distrodebug.bundle.options import DumpOptions
from distrodebug.bundle.writer import DumpInfo, SideFile, write_bundle
from distrodebug.errors import UsageError
from tests.unit.bundle.test_format import SAMPLE, tar_bytes


def _core(tmp_path: Path, size: int = 3 << 20) -> Path:
    path = tmp_path / "1-app.core"
    path.write_bytes(b"\x7fELF" + bytes(range(256)) * (size // 256 - 1) + bytes(252))
    return path


def test_side_files_are_stored_hashed_and_verified(tmp_path: Path) -> None:
    core = _core(tmp_path)
    out = tmp_path / "b.tar"
    info = DumpInfo(side_files=[SideFile("memory/1-app.core", core)], warnings=["said first"])
    result = write_bundle(out, io.BytesIO(tar_bytes(SAMPLE)), info, DumpOptions())
    assert result.warnings[0] == "said first"
    with tarfile.open(out) as tar:
        member = tar.getmember("memory/1-app.core")
        assert member.size == core.stat().st_size and member.mode == 0o600
        assert tar.extractfile(member).read() == core.read_bytes()  # type: ignore[union-attr]
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        offset = member.offset_data
    assert set(manifest["files"]) == {"memory/1-app.core"} and manifest["warnings"] == ["said first"]
    assert verify_bundle(out).ok

    data = bytearray(out.read_bytes())
    data[offset + 1000] ^= 0xFF
    out.write_bytes(bytes(data))
    altered = verify_bundle(out)
    assert not altered.ok and [a.name for a in altered.altered] == ["memory/1-app.core"]


def test_a_bundle_without_side_files_has_no_files_key(tmp_path: Path) -> None:
    out = tmp_path / "b.tar"
    write_bundle(out, io.BytesIO(tar_bytes(SAMPLE)), DumpInfo(), DumpOptions())
    with tarfile.open(out) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert "files" not in manifest


@pytest.mark.parametrize("name", ["fs/etc/passwd", "meta/x.json", "manifest.json", "memory/../x"])
def test_side_files_may_not_take_reserved_names(tmp_path: Path, name: str) -> None:
    core = _core(tmp_path, 4096)
    with pytest.raises(UsageError):
        write_bundle(tmp_path / "b.tar", io.BytesIO(tar_bytes(SAMPLE)),
                     DumpInfo(side_files=[SideFile(name, core)]), DumpOptions())
    assert not (tmp_path / "b.tar").exists()
