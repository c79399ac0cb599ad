"""extract_bundle on honest and on crafted malicious bundles: nothing may land outside dest."""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest

from distrodebug.bundle.extract import extract_bundle
from distrodebug.bundle.format import FORMAT
from distrodebug.bundle.options import DumpOptions
from distrodebug.bundle.writer import DumpInfo, write_bundle
from distrodebug.errors import BundleError
from tests.unit.bundle.test_format import SAMPLE, tar_bytes


def _honest(tmp_path: Path) -> Path:
    out = tmp_path / "b.tar.zst"
    info = DumpInfo(meta={"logs.txt": "hello\n"})
    write_bundle(out, io.BytesIO(tar_bytes(SAMPLE)), info, DumpOptions())
    return out


def test_honest_bundle_extracts(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    result = extract_bundle(_honest(tmp_path), dest, meta_dest=tmp_path / "meta")
    assert (dest / "etc/passwd").read_bytes().startswith(b"root:x:0:0")
    assert os.readlink(dest / "app/link") == "/etc/passwd"
    assert (dest / "app/hard").stat().st_ino == (dest / "etc/passwd").stat().st_ino
    assert not (dest / "run/fifo").exists() and not (dest / "dev/null").exists()
    assert (tmp_path / "meta/logs.txt").read_text() == "hello\n"
    assert json.loads((tmp_path / "meta/manifest.json").read_text())["format"] == FORMAT
    assert result.files == 3 and result.symlinks == 1 and result.hardlinks == 1
    assert result.manifest_ok and result.altered == [] and result.refused == []


def test_refuses_non_empty_dest_unless_forced(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "keep").write_text("x")
    with pytest.raises(BundleError, match="not empty"):
        extract_bundle(_honest(tmp_path), dest)
    result = extract_bundle(_honest(tmp_path), dest, force=True)
    assert result.files == 3 and (dest / "keep").exists()


def _member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", **fields: object):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o644
    for key, value in fields.items():
        setattr(info, key, value)
    if kind == tarfile.REGTYPE:
        info.size = len(data)
    return info, data


def _malicious(path: Path, outside: Path) -> None:
    members = [
        _member("fs/" + str(outside / "abs.txt"), data=b"absolute"),  # fs//tmp/...: absolute
        _member("fs/../../escape.txt", data=b"dotdot"),
        _member("fs/a/../../b", data=b"sneaky"),
        _member("fs/link", tarfile.SYMTYPE, linkname="/"),
        _member("fs/link/" + str(outside / "through.txt").lstrip("/"), data=b"through"),
        _member("fs/out", tarfile.SYMTYPE, linkname=str(outside)),
        _member("fs/out/via.txt", data=b"via"),
        _member("fs/passwd", tarfile.LNKTYPE, linkname="/etc/passwd"),
        _member("fs/passwd2", tarfile.LNKTYPE, linkname="fs/../../../etc/passwd"),
        _member("fs/dev/sda", tarfile.BLKTYPE, devmajor=8, devminor=0),
        _member("fs/dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3),
        _member("fs/fifo", tarfile.FIFOTYPE),
        _member("fs/suid", data=b"#!/bin/sh\n", mode=0o6755),
        _member("fs/sticky", tarfile.DIRTYPE, mode=0o1777),
        _member("fs/./dot", data=b"dot"),
        _member("fs/ok.txt", data=b"fine"),
        _member("fs/ok.txt", data=b"second copy"),
        _member("fs/ok-link", tarfile.LNKTYPE, linkname="fs/ok.txt"),
        _member("fs/selfdir", tarfile.SYMTYPE, linkname="."),
        _member("fs/selfdir/ok.txt", data=b"overwrite through a link"),
        _member("meta/../../meta-escape", data=b"m"),
    ]
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)


def test_malicious_bundle_cannot_escape(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("untouched")
    bundle = tmp_path / "evil.tar"
    _malicious(bundle, outside)
    dest = tmp_path / "work" / "dest"
    result = extract_bundle(bundle, dest, meta_dest=tmp_path / "work" / "meta")

    assert sorted(p.name for p in outside.iterdir()) == ["precious"]
    assert (outside / "precious").read_text() == "untouched"
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "work/escape.txt").exists()
    assert not (tmp_path / "b").exists() and not (tmp_path / "work/b").exists()
    assert not (tmp_path / "meta-escape").exists()
    # Symlinks are created as symlinks, nothing is written through them.
    assert os.readlink(dest / "link") == "/" and os.readlink(dest / "out") == str(outside)
    assert os.readlink(dest / "selfdir") == "."
    # Hard links only to files extracted here; device nodes and FIFOs never.
    assert not (dest / "passwd").exists() and not (dest / "passwd2").exists()
    assert not (dest / "dev/sda").exists() and not (dest / "fifo").exists()
    assert (dest / "ok-link").stat().st_ino == (dest / "ok.txt").stat().st_ino
    assert (dest / "ok.txt").read_bytes() == b"fine"
    # No setuid, setgid or sticky bits.
    assert stat.S_IMODE((dest / "suid").stat().st_mode) == 0o755
    assert stat.S_IMODE((dest / "sticky").stat().st_mode) == 0o777

    refused = dict(result.refused)
    assert refused["fs/" + str(outside / "abs.txt")] == "absolute path"
    assert refused["fs/../../escape.txt"] == "'..' in path"
    assert refused["fs/a/../../b"] == "'..' in path"
    assert "symlink" in refused["fs/link/" + str(outside / "through.txt").lstrip("/")]
    assert "symlink" in refused["fs/out/via.txt"]
    assert "symlink" in refused["fs/selfdir/ok.txt"]
    assert "not a file extracted here" in refused["fs/passwd"]
    assert "not a file extracted here" in refused["fs/passwd2"]
    assert "never created" in refused["fs/dev/sda"] and "never created" in refused["fs/fifo"]
    assert refused["fs/./dot"] == "empty or '.' path component"
    assert "twice" in refused["fs/ok.txt"]
    assert refused["meta/../../meta-escape"] == "'..' in path"


def test_preexisting_symlink_in_dest_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    os.symlink(outside, dest / "etc")
    result = extract_bundle(_honest(tmp_path), dest, force=True)
    assert list(outside.iterdir()) == []
    assert any(name == "fs/etc/passwd" for name, _ in result.refused)


def test_chown_is_off_by_default(tmp_path: Path) -> None:
    bundle = tmp_path / "b.tar"
    with tarfile.open(bundle, "w") as tar:
        info, data = _member("fs/owned", data=b"x", uid=4242, gid=4242)
        tar.addfile(info, io.BytesIO(data))
    extract_bundle(bundle, tmp_path / "d")
    assert (tmp_path / "d/owned").stat().st_uid == os.geteuid()
    if os.geteuid() == 0:
        extract_bundle(bundle, tmp_path / "e", chown=True)
        assert (tmp_path / "e/owned").stat().st_uid == 4242


def test_altered_content_is_reported(tmp_path: Path) -> None:
    bundle = tmp_path / "b.tar"
    write_bundle(bundle, io.BytesIO(tar_bytes(SAMPLE)), DumpInfo(), DumpOptions())
    raw = bytearray(bundle.read_bytes())
    at = raw.find(b"root:x:0:0")
    raw[at : at + 4] = b"r00t"
    bundle.write_bytes(bytes(raw))
    result = extract_bundle(bundle, tmp_path / "d")
    assert result.altered == ["fs/etc/passwd"]
