"""verify_bundle catches every kind of tampering: content, missing, extra, manifest edits."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from distrodebug.bundle.format import verify_bundle
from distrodebug.bundle.options import DumpOptions
from distrodebug.bundle.writer import DumpInfo, write_bundle
from distrodebug.errors import BundleError
from tests.unit.bundle.test_format import SAMPLE, tar_bytes

Edit = Callable[[list[tuple[tarfile.TarInfo, bytes]]], None]


def _bundle(tmp_path: Path) -> Path:
    out = tmp_path / "b.tar"
    info = DumpInfo(target={"name": "web"}, meta={"logs.txt": "hello\n"})
    write_bundle(out, io.BytesIO(tar_bytes(SAMPLE)), info, DumpOptions())
    return out


def _rewrite(path: Path, edit: Edit) -> None:
    """Read every member, let ``edit`` change the list, write the tar again."""
    with tarfile.open(path) as tar:
        members = []
        for info in tar.getmembers():
            fileobj = tar.extractfile(info) if info.isreg() else None
            members.append((info, fileobj.read() if fileobj else b""))
    edit(members)
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if info.isreg():
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)


def _find(members: list[tuple[tarfile.TarInfo, bytes]], name: str) -> int:
    return next(i for i, (info, _) in enumerate(members) if info.name == name)


def test_untouched_bundle_verifies(tmp_path: Path) -> None:
    result = verify_bundle(_bundle(tmp_path))
    assert result.ok and result.checked > 0 and result.manifest_ok


def test_changed_content_same_size(tmp_path: Path) -> None:
    path = _bundle(tmp_path)

    def edit(members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
        i = _find(members, "fs/etc/passwd")
        info, data = members[i]
        members[i] = (info, data.replace(b"root", b"r00t"))

    _rewrite(path, edit)
    result = verify_bundle(path)
    assert not result.ok
    assert [(a.name, a.what) for a in result.altered] == [
        ("fs/etc/passwd", "sha256 differs from the manifest")
    ]


def test_changed_size(tmp_path: Path) -> None:
    path = _bundle(tmp_path)

    def edit(members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
        i = _find(members, "meta/logs.txt")
        members[i] = (members[i][0], b"hello, edited\n")

    _rewrite(path, edit)
    result = verify_bundle(path)
    assert [a.name for a in result.altered] == ["meta/logs.txt"]
    assert "size" in result.altered[0].what


def test_deleted_member(tmp_path: Path) -> None:
    path = _bundle(tmp_path)
    _rewrite(path, lambda m: m.pop(_find(m, "fs/app/main.py")) and None)
    result = verify_bundle(path)
    assert result.missing == ["fs/app/main.py"] and not result.ok


def test_added_member(tmp_path: Path) -> None:
    path = _bundle(tmp_path)

    def edit(members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
        members.insert(2, (tarfile.TarInfo("fs/etc/cron.d/backdoor"), b"* * * * * root sh\n"))

    _rewrite(path, edit)
    result = verify_bundle(path)
    assert result.extra == ["fs/etc/cron.d/backdoor"] and not result.ok


def test_symlink_retargeted(tmp_path: Path) -> None:
    path = _bundle(tmp_path)

    def edit(members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
        members[_find(members, "fs/app/link")][0].linkname = "/etc/shadow"

    _rewrite(path, edit)
    assert "link target" in verify_bundle(path).altered[0].what


def test_manifest_edited_changes_digest_and_is_caught(tmp_path: Path) -> None:
    path = _bundle(tmp_path)
    before = verify_bundle(path).digest

    def edit(members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
        i = _find(members, "manifest.json")
        manifest = json.loads(members[i][1])
        for entry in manifest["entries"]:
            if entry["path"] == "etc/passwd":
                entry["sha256"] = "0" * 64
        members[i] = (members[i][0], json.dumps(manifest).encode())

    _rewrite(path, edit)
    result = verify_bundle(path)
    assert result.digest != before
    assert [a.name for a in result.altered] == ["fs/etc/passwd"]


def test_unparseable_manifest(tmp_path: Path) -> None:
    path = _bundle(tmp_path)

    def edit(members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
        i = _find(members, "manifest.json")
        members[i] = (members[i][0], members[i][1][:-40])

    _rewrite(path, edit)
    result = verify_bundle(path)
    assert not result.manifest_ok and not result.ok
    assert "not valid JSON" in result.manifest_error


def test_missing_manifest(tmp_path: Path) -> None:
    path = _bundle(tmp_path)
    _rewrite(path, lambda m: m.pop(_find(m, "manifest.json")) and None)
    result = verify_bundle(path)
    assert not result.ok and "no manifest" in result.manifest_error


def test_unknown_format_version(tmp_path: Path) -> None:
    path = _bundle(tmp_path)

    def edit(members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
        i = _find(members, "manifest.json")
        manifest = json.loads(members[i][1])
        manifest["format"] = "distrodebug-bundle/9"
        members[i] = (members[i][0], json.dumps(manifest).encode())

    _rewrite(path, edit)
    with pytest.raises(BundleError, match="Unknown bundle format"):
        verify_bundle(path)


def test_truncated_bundle_file(tmp_path: Path) -> None:
    out = tmp_path / "b.tar.zst"
    write_bundle(out, io.BytesIO(tar_bytes(SAMPLE)), DumpInfo(), DumpOptions())
    out.write_bytes(out.read_bytes()[:-30])
    with pytest.raises(BundleError, match="truncated"):
        verify_bundle(out)


def test_not_a_bundle(tmp_path: Path) -> None:
    path = tmp_path / "x.tar"
    path.write_bytes(b"hello world" * 100)
    with pytest.raises(BundleError):
        verify_bundle(path)
    with pytest.raises(BundleError, match="Cannot open"):
        verify_bundle(tmp_path / "absent.tar")
