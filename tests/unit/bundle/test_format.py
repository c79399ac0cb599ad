"""write_bundle and verify_bundle on tar streams built here: format, filters, failures."""

from __future__ import annotations

import errno
import io
import json
import os
import stat
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from distrodebug.bundle import contents
from distrodebug.bundle.format import FORMAT, verify_bundle
from distrodebug.bundle.options import DumpOptions
from distrodebug.bundle.redact import REDACTED
from distrodebug.bundle.tar.reader import MARK_SUFFIX_BATCH, MARK_SUFFIX_END
from distrodebug.bundle.writer import DumpInfo, SkippedEntry, write_bundle
from distrodebug.errors import BundleError, UsageError

# -- helpers shared by the other test_bundle*/test_report modules ---------------------------------

Spec = tuple[str, str, Any]  # (name, kind, content-or-linkname)


def tar_bytes(specs: Iterable[Spec], fmt: int = tarfile.GNU_FORMAT, zeros: bool = True) -> bytes:
    """A tar archive of (name, kind, data) items; kinds file/dir/symlink/hardlink/fifo/char."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for name, kind, data in specs:
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            if kind == "file":
                info.size = len(data)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))
                continue
            info.type = {
                "dir": tarfile.DIRTYPE,
                "symlink": tarfile.SYMTYPE,
                "hardlink": tarfile.LNKTYPE,
                "fifo": tarfile.FIFOTYPE,
                "char": tarfile.CHRTYPE,
                "block": tarfile.BLKTYPE,
            }[kind]
            if kind in ("symlink", "hardlink"):
                info.linkname = data
            if kind in ("char", "block"):
                info.devmajor, info.devminor = 1, 3
            info.mode = 0o755 if kind == "dir" else 0o644
            tar.addfile(info)
    data = buf.getvalue()
    return data if zeros else data.rstrip(b"\0")


def marker(nonce: str, suffix: str) -> bytes:
    info = tarfile.TarInfo(nonce + suffix)
    return info.tobuf(tarfile.USTAR_FORMAT)


def framed(*batches: bytes, nonce: str = "0123456789abcdef" * 2, end: bool = True) -> bytes:
    """A sidecar-style stream: a marker before each batch and one at the end."""
    out = marker(nonce, MARK_SUFFIX_BATCH)
    for batch in batches:
        out += marker(nonce, MARK_SUFFIX_BATCH) + batch
    return out + (marker(nonce, MARK_SUFFIX_END) if end else b"")


def write(
    tmp_path: Path,
    stream: bytes,
    name: str = "b.tar",
    info: DumpInfo | None = None,
    **options: Any,
) -> tuple[Path, dict[str, Any]]:
    out = tmp_path / name
    write_bundle(out, io.BytesIO(stream), info or DumpInfo(), DumpOptions(**options))
    return out, read_manifest(out)


def read_manifest(path: Path) -> dict[str, Any]:
    from distrodebug.bundle.format import open_bundle

    with open_bundle(path) as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            if member.name == "manifest.json":
                fileobj = tar.extractfile(member)
                assert fileobj is not None
                manifest: dict[str, Any] = json.loads(fileobj.read())
                return manifest
    raise AssertionError("no manifest")


def entries(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["path"]: e for e in manifest["entries"]}


def member_names(path: Path) -> list[str]:
    from distrodebug.bundle.format import open_bundle

    with open_bundle(path) as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
        return [m.name for m in tar]


SAMPLE: list[Spec] = [
    ("./etc", "dir", None),
    ("./etc/passwd", "file", b"root:x:0:0::/root:/sbin/nologin\n"),
    ("etc/hosts", "file", b"127.0.0.1 localhost\n"),
    ("/app/main.py", "file", b"print('hi')\n" * 100),
    ("./app/link", "symlink", "/etc/passwd"),
    ("./app/hard", "hardlink", "./etc/passwd"),
    ("./run/fifo", "fifo", None),
    ("./dev/null", "char", None),
]


# -- format and round trip ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "magic"), [("b.tar", b""), ("b.tar.gz", b"\x1f\x8b"), ("b.tar.zst", b"\x28\xb5\x2f\xfd")]
)
def test_round_trip_each_compression(tmp_path: Path, name: str, magic: bytes) -> None:
    out = tmp_path / name
    result = write_bundle(out, io.BytesIO(tar_bytes(SAMPLE)), DumpInfo(), DumpOptions())
    assert out.read_bytes().startswith(magic)
    verified = verify_bundle(out)
    assert verified.ok, verified
    assert verified.digest == result.digest
    assert result.files == 3 and result.skipped == 2


def test_manifest_fields_and_member_order(tmp_path: Path) -> None:
    target = {"container_id": "abc", "name": "web", "image": "app:1", "labels": {"team": "x"}}
    info = DumpInfo(target=target, meta={"logs.txt": "started\n", "inspect.json": {"Id": "abc"}})
    out, manifest = write(tmp_path, tar_bytes(SAMPLE), info=info)
    assert manifest["format"] == FORMAT
    assert manifest["tool"]["name"] == "distrodebug" and manifest["tool"]["version"]
    assert manifest["created"].endswith("Z")
    assert manifest["target"] == target
    assert set(manifest["meta"]) == {"meta/target.json", "meta/logs.txt", "meta/inspect.json"}
    names = member_names(out)
    assert names[0].startswith("meta/") and names[-1] == "manifest.json"
    by_path = entries(manifest)
    passwd = by_path["etc/passwd"]
    assert passwd["type"] == "file" and passwd["mode"] == "0644" and passwd["status"] == "ok"
    assert len(passwd["sha256"]) == 64 and passwd["size"] == 32
    assert by_path["app/main.py"]["size"] == 1200  # "/app/..." normalised
    assert by_path["app/link"] == {**by_path["app/link"], "type": "symlink", "link": "/etc/passwd"}
    assert by_path["app/hard"]["type"] == "hardlink" and by_path["app/hard"]["link"] == "etc/passwd"
    assert by_path["run/fifo"]["status"] == "skipped" and by_path["run/fifo"]["reason"] == "fifo"
    assert by_path["dev/null"]["reason"] == "device node" and by_path["dev/null"]["device"] == "1,3"
    assert "fs/run/fifo" not in names and "fs/dev/null" not in names
    assert "fs/app/hard" in names


def test_bundle_is_0600_and_no_partial_file_left(tmp_path: Path) -> None:
    out, _ = write(tmp_path, tar_bytes(SAMPLE))
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["b.tar"]


def test_prefix_and_archive_api_names(tmp_path: Path) -> None:
    specs: list[Spec] = [("x/", "dir", None), ("x/a.txt", "file", b"a")]
    out = tmp_path / "b.tar"
    info = DumpInfo(fs_prefix="var/lib")
    write_bundle(out, io.BytesIO(tar_bytes(specs)), info, DumpOptions())
    assert set(entries(read_manifest(out))) == {"var/lib/x", "var/lib/x/a.txt"}


def test_concatenated_archives_with_end_blocks_between(tmp_path: Path) -> None:
    stream = tar_bytes(SAMPLE[:2]) + tar_bytes(SAMPLE[2:4]) + tar_bytes([("z", "file", b"z")])
    _, manifest = write(tmp_path, stream)
    assert {"etc/passwd", "etc/hosts", "app/main.py", "z"} <= set(entries(manifest))


def test_pax_long_names(tmp_path: Path) -> None:
    long = "d/" + "n" * 200 + "/é.txt"
    stream = tar_bytes([(long, "file", b"x"), ("l", "symlink", "t" * 150)], fmt=tarfile.PAX_FORMAT)
    out, manifest = write(tmp_path, stream)
    assert entries(manifest)[long]["size"] == 1
    assert entries(manifest)["l"]["link"] == "t" * 150
    assert verify_bundle(out).ok


def test_unsafe_and_duplicate_names(tmp_path: Path) -> None:
    stream = tar_bytes(
        [("../../evil", "file", b"x"), ("a", "file", b"1"), ("./a", "file", b"2"), (".", "dir", None)]
    )
    out, manifest = write(tmp_path, stream)
    by_path = entries(manifest)
    assert by_path["../../evil"]["status"] == "skipped"
    assert by_path["../../evil"]["reason"] == "unsafe name"
    assert [e["path"] for e in manifest["entries"]].count("a") == 1
    assert "fs/../../evil" not in member_names(out)
    assert verify_bundle(out).ok


# -- options ---------------------------------------------------------------------------------------


def test_max_file_size_skips_but_consumes(tmp_path: Path) -> None:
    stream = tar_bytes([("big", "file", b"B" * 5000), ("after", "file", b"ok")])
    out, manifest = write(tmp_path, stream, max_file_size=4096)
    by_path = entries(manifest)
    assert by_path["big"]["status"] == "skipped" and "maximum" in by_path["big"]["reason"]
    assert by_path["after"]["status"] == "ok"
    assert "fs/big" not in member_names(out)


def test_paths_and_excludes(tmp_path: Path) -> None:
    specs: list[Spec] = [
        ("etc/a.conf", "file", b"1"),
        ("etc/b.log", "file", b"2"),
        ("var/cache/x", "file", b"3"),
        ("var/lib/y", "file", b"4"),
        ("app/z", "file", b"5"),
    ]
    _, manifest = write(tmp_path, tar_bytes(specs), paths=("/etc", "var"), excludes=("*.log", "/var/cache"))
    assert set(entries(manifest)) == {"etc/a.conf", "var/lib/y"}


def test_changes_annotate_and_deleted_entries(tmp_path: Path) -> None:
    changes = {"/etc/passwd": "changed", "/app/main.py": "added", "/etc/shadow": "deleted"}
    info = DumpInfo(changes=changes)
    out, manifest = write(tmp_path, tar_bytes(SAMPLE), info=info)
    by_path = entries(manifest)
    assert by_path["etc/passwd"]["change"] == "changed"
    assert by_path["app/main.py"]["change"] == "added"
    assert by_path["etc/shadow"] == {
        "path": "etc/shadow",
        "type": None,
        "change": "deleted",
        "status": "deleted",
    }
    assert "etc/hosts" in by_path and "change" not in by_path["etc/hosts"]
    assert "meta/changes.json" in manifest["meta"]
    assert verify_bundle(out).ok


def test_changed_only(tmp_path: Path) -> None:
    info = DumpInfo(changes={"etc/passwd": "changed", "gone": "deleted"})
    _, manifest = write(tmp_path, tar_bytes(SAMPLE), info=info, changed_only=True)
    assert set(entries(manifest)) == {"etc/passwd", "gone"}


def test_changed_only_needs_changes(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="change"):
        write(tmp_path, tar_bytes(SAMPLE), changed_only=True)


def test_side_channel_skips(tmp_path: Path) -> None:
    info = DumpInfo(
        skipped=[
            SkippedEntry("./var/log/huge", "larger than the maximum file size", "file", 2 << 30),
            ("/root/.secret", "Permission denied"),
            ("etc/passwd", "ignored: it was stored"),
        ]
    )
    _, manifest = write(tmp_path, tar_bytes(SAMPLE), info=info)
    by_path = entries(manifest)
    assert by_path["var/log/huge"]["size"] == 2 << 30
    assert by_path["var/log/huge"]["status"] == "skipped"
    assert by_path["root/.secret"]["reason"] == "Permission denied"
    assert by_path["etc/passwd"]["status"] == "ok"


def test_meta_redacted_unless_include_secrets(tmp_path: Path) -> None:
    inspect = {"Config": {"Env": ["DB_PASSWORD=hunter2", "LANG=C"], "Labels": {"api_key": "k"}}}
    info = DumpInfo(
        target={"labels": {"SECRET_TOKEN": "t"}},
        meta={"inspect.json": inspect, "logs.txt": "connect postgres://u:pw@db/x"},
    )
    out, manifest = write(tmp_path, tar_bytes(SAMPLE), info=info)
    assert manifest["redactions"] == 4
    assert manifest["target"]["labels"]["SECRET_TOKEN"] == REDACTED
    raw = _meta(out, "meta/inspect.json") + _meta(out, "meta/logs.txt")
    assert b"hunter2" not in raw and b"pw@" not in raw and b"LANG=C" in raw
    out2, manifest2 = write(tmp_path, tar_bytes(SAMPLE), name="c.tar", info=info, include_secrets=True)
    assert manifest2["redactions"] == 0
    assert b"hunter2" in _meta(out2, "meta/inspect.json")


def _meta(path: Path, name: str) -> bytes:
    from distrodebug.bundle.format import open_bundle

    with open_bundle(path) as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            if member.name == name:
                fileobj = tar.extractfile(member)
                assert fileobj is not None
                return fileobj.read()
    raise AssertionError(name)


def test_progress_is_throttled(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    specs: list[Spec] = [(f"f{i}", "file", b"x" * 10) for i in range(2000)]
    out = tmp_path / "b.tar"
    write_bundle(
        out, io.BytesIO(tar_bytes(specs)), DumpInfo(), DumpOptions(), lambda b, f: calls.append((b, f))
    )
    assert calls[-1] == (20000, 2000)
    assert len(calls) < 50


# -- sidecar framing: a file that shrank while busybox tar read it --------------------------------


def test_framed_stream_with_a_member_cut_short(tmp_path: Path) -> None:
    whole = tar_bytes([("a", "file", b"A" * 3000)], zeros=False)
    cut = whole[: 512 + 1000]  # header + 1000 of 3000 bytes: busybox tar died here
    nxt = tar_bytes([("b", "file", b"B" * 10)])
    out, manifest = write(tmp_path, framed(cut, nxt))
    by_path = entries(manifest)
    assert by_path["a"]["status"] == "partial" and "1000 of 3000" in by_path["a"]["reason"]
    assert by_path["a"]["size"] == 3000
    assert by_path["b"]["status"] == "ok"
    assert verify_bundle(out).ok


def test_framed_stream_without_end_marker_fails(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="before the sidecar said it was complete"):
        write(tmp_path, framed(tar_bytes(SAMPLE), end=False))
    assert list(tmp_path.iterdir()) == []


def test_plain_stream_cut_in_a_member_fails(tmp_path: Path) -> None:
    data = tar_bytes([("a", "file", b"A" * 3000)])[:1500]
    with pytest.raises(BundleError, match="ended in the middle of /a"):
        write(tmp_path, data)
    assert list(tmp_path.iterdir()) == []


def test_garbage_stream_fails_cleanly(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="not valid tar"):
        write(tmp_path, b"this is not a tar stream at all" * 40)
    assert list(tmp_path.iterdir()) == []


# -- failures leave nothing behind -------------------------------------------------------------------


class _Exploding(io.RawIOBase):
    def __init__(self, data: bytes, after: int, exc: BaseException) -> None:
        self._data, self._after, self._exc, self._pos = data, after, exc, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        if self._pos >= self._after:
            raise self._exc
        n = min(len(buf), self._after - self._pos, 4096)
        buf[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


@pytest.mark.parametrize(
    ("exc", "raised"),
    [
        (ConnectionResetError("engine went away"), BundleError),
        (RuntimeError("boom"), BundleError),
        (KeyboardInterrupt(), KeyboardInterrupt),
    ],
)
def test_failure_while_reading_removes_temp(
    tmp_path: Path, exc: BaseException, raised: type[BaseException]
) -> None:
    data = tar_bytes([(f"f{i}", "file", os.urandom(5000)) for i in range(20)])
    stream = _Exploding(data, 40_000, exc)
    with pytest.raises(raised):
        write_bundle(tmp_path / "b.tar.zst", stream, DumpInfo(), DumpOptions())  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_disk_full_removes_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Full(io.RawIOBase):
        def __init__(self, raw: Any) -> None:
            self.written = 0

        def writable(self) -> bool:
            return True

        def write(self, data: Any) -> int:
            self.written += len(data)
            if self.written > 20_000:
                raise OSError(errno.ENOSPC, "No space left on device")
            return len(data)

    monkeypatch.setattr(contents, "open_compressor", lambda raw, c, level: Full(raw))
    data = tar_bytes([(f"f{i}", "file", b"x" * 5000) for i in range(20)])
    with pytest.raises(BundleError, match="disk is full"):
        write(tmp_path, data)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_directory(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="Cannot create"):
        write_bundle(tmp_path / "missing" / "b.tar", io.BytesIO(b""), DumpInfo(), DumpOptions())


def test_empty_stream_gives_empty_bundle(tmp_path: Path) -> None:
    out, manifest = write(tmp_path, b"")
    assert manifest["entries"] == []
    assert verify_bundle(out).ok


# -- header codec ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind", "size", "link"),
    [
        ("fs/etc/passwd", tarfile.REGTYPE, 1234, ""),
        ("fs/dir", tarfile.DIRTYPE, 0, ""),
        ("fs/l", tarfile.SYMTYPE, 0, "../x"),
        ("fs/" + "p" * 97, tarfile.REGTYPE, 0, ""),
    ],
)
def test_fast_header_matches_tarfile(name: str, kind: bytes, size: int, link: str) -> None:
    from distrodebug.bundle.tar.header import fast_header, fast_tobuf

    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, size, link
    info.mode, info.uid, info.gid, info.mtime = 0o4755, 65532, 7, 1_700_000_000
    built = fast_tobuf(info)
    assert built is not None
    theirs = tarfile.TarInfo.frombuf(built, "utf-8", "strict")
    assert (theirs.name, theirs.type, theirs.size, theirs.linkname, theirs.mode) == (
        name,
        kind,
        size,
        link,
        0o4755,
    )
    parsed = fast_header(info.tobuf(tarfile.USTAR_FORMAT))
    assert parsed is not None
    assert (parsed.name, parsed.size, parsed.uid, parsed.gid, parsed.mtime) == (
        name,
        size,
        65532,
        7,
        1_700_000_000,
    )


def test_fast_header_falls_back_when_unusual() -> None:
    from distrodebug.bundle.tar.header import fast_header, fast_tobuf

    info = tarfile.TarInfo("huge")
    info.size = 9 << 30  # needs base-256 (GNU) or pax
    assert fast_tobuf(info) is None
    assert fast_header(info.tobuf(tarfile.GNU_FORMAT)) is None
    assert tarfile.TarInfo.frombuf(info.tobuf(tarfile.GNU_FORMAT), "utf-8", "strict").size == 9 << 30
    assert fast_tobuf(tarfile.TarInfo("é")) is None and fast_tobuf(tarfile.TarInfo("x" * 101)) is None
    block = bytearray(tarfile.TarInfo("x").tobuf(tarfile.USTAR_FORMAT))
    block[0:1] = b"y"  # checksum no longer matches
    assert fast_header(bytes(block)) is None


def test_huge_member_through_the_slow_path(tmp_path: Path) -> None:
    info = tarfile.TarInfo("./sparse")
    info.size = 9 << 30
    header = info.tobuf(tarfile.GNU_FORMAT)  # base-256 size, parsed by tarfile
    # Over the limit, so it is skipped; but its content never comes: the stream was cut.
    with pytest.raises(BundleError, match="ended in the middle of an entry it was skipping"):
        write(tmp_path, header, max_file_size=1 << 30)
