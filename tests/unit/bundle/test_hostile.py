"""Bundles from a compromised target, damaged bundles and awkward output paths (issue 11).

The CLI runs in a subprocess: exit codes, the absence of tracebacks and what reaches the
terminal are the point. No engine is needed: bundles are written from tar streams made here.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import stat
import subprocess
import sys
import tarfile
import threading
from pathlib import Path
from typing import Any

import pytest
import zstandard

from distrodebug.bundle.options import DumpOptions
from distrodebug.bundle.writer import DumpInfo, write_bundle
from distrodebug.errors import BundleError
from tests.unit.bundle.test_format import SAMPLE, tar_bytes

ESC = "\x1b"
HOSTILE = f"etc/{ESC}[1A{ESC}[2Kinnocent"


def cli(*args: str, cwd: Path | None = None) -> tuple[int, str, str, int]:
    """Run distrodebug; (exit code, stdout, stderr, peak memory of the child in MiB).

    Through a fresh intermediate process: RUSAGE_CHILDREN's peak covers every child a process
    ever waited for, so in pytest's own process it would be the largest of the whole run's
    (a headless browser, say), not this command's.
    """
    measure = ("import resource, subprocess, sys\n"
               "code = subprocess.call(sys.argv[1:])\n"
               "sys.stderr.write('\\nDDPEAK %d' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
               "sys.exit(code)\n")
    proc = subprocess.run([sys.executable, "-c", measure, sys.executable, "-m", "distrodebug", *args],
                          capture_output=True, text=True, errors="surrogateescape", timeout=300,
                          cwd=cwd)
    err, _, peak = proc.stderr.rpartition("\nDDPEAK ")
    return proc.returncode, proc.stdout, err, int(peak) // 1024


def bundle(tmp_path: Path, name: str = "b.tar", specs: Any = SAMPLE, **meta: Any) -> Path:
    out = tmp_path / name
    info = DumpInfo(target={"name": "web"}, meta={"logs.txt": "hello\n", **meta})
    write_bundle(out, io.BytesIO(tar_bytes(specs)), info, DumpOptions())
    return out


def members(path: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(path) as tar:
        return [(m, (tar.extractfile(m).read() if m.isreg() else b"")) for m in tar.getmembers()]  # type: ignore[union-attr]


def rewrite(path: Path, items: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in items:
            if info.isreg():
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)


def with_manifest(path: Path, edit: Any) -> None:
    items = members(path)
    for i, (info, data) in enumerate(items):
        if info.name == "manifest.json":
            manifest = json.loads(data)
            edit(manifest)
            items[i] = (info, json.dumps(manifest).encode())
    rewrite(path, items)


# -- 8: terminal escapes -------------------------------------------------------------------------

def test_names_and_command_lines_from_a_bundle_cannot_drive_the_terminal(tmp_path: Path) -> None:
    specs = [*SAMPLE, (HOSTILE, "file", b"x")]
    path = bundle(tmp_path, specs=specs, **{"processes.json": [
        {"pid": 7, "ppid": 1, "uid": [0], "name": "sh", "cmdline": [f"kworker/0:1{ESC}]0;x\a"]}]})
    items = members(path)
    items = [(i, d.replace(b"hello", b"hello")) for i, d in items if i.name != "fs/etc/passwd"]
    rewrite(path, items)  # one file missing, so verify lists names too
    for args in (("report", str(path)), ("verify", str(path)),
                 ("extract", str(path), str(tmp_path / "x"))):
        code, out, err, _ = cli(*args)
        assert ESC not in out + err and "\a" not in out + err, (args, out, err)
        assert "Traceback" not in err
    code, out, err, _ = cli("report", str(path))
    assert "\\x1b[1A" in out  # shown, escaped


# -- 10: truncated bundles of every format --------------------------------------------------------

@pytest.mark.parametrize("name", ["b.tar", "b.tar.gz", "b.tar.zst"])
def test_truncated_bundles_fail_verify_with_exit_1(tmp_path: Path, name: str) -> None:
    path = bundle(tmp_path, name, specs=[*SAMPLE, ("big", "file", os.urandom(1 << 20))])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    code, _, err, _ = cli("verify", str(path))
    assert code == 1 and "truncated" in err and "Interrupted" not in err, err
    for args in (("report", str(path)), ("extract", str(path), str(tmp_path / "x"))):
        code, _, err, _ = cli(*args)
        assert code == 1 and "truncated" in err and "Traceback" not in err, (args, err)


# -- 11: memory ---------------------------------------------------------------------------------

def _zst_tar(path: Path, huge: list[tuple[str, int]], small: list[tuple[str, bytes]]) -> None:
    """A zstd tar whose members are mostly zeros: tiny on disk, huge when read."""
    with open(path, "wb") as raw, zstandard.ZstdCompressor(level=1).stream_writer(raw) as out:
        for name, data in small:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.write(info.tobuf(tarfile.PAX_FORMAT) + data + b"\0" * (-len(data) % 512))
        zeros = b" " * (1 << 20)
        for name, size in huge:
            info = tarfile.TarInfo(name)
            info.size = size
            out.write(info.tobuf(tarfile.PAX_FORMAT))
            for _ in range(size >> 20):
                out.write(zeros)
        out.write(b"\0" * 1024)


def test_hostile_sizes_do_not_exhaust_memory(tmp_path: Path) -> None:
    manifest = {"format": "distrodebug-bundle/1", "entries": []}
    many = tmp_path / "many-meta.tar.zst"
    _zst_tar(many, [(f"meta/junk-{i}.json", 48 << 20) for i in range(8)],
             [("manifest.json", json.dumps(manifest).encode())])
    code, _, err, peak = cli("report", str(many))
    assert "Traceback" not in err and peak < 300, (code, err, peak)
    huge = tmp_path / "huge-manifest.tar.zst"
    _zst_tar(huge, [("manifest.json", 600 << 20)], [])
    code, _, err, peak = cli("verify", str(huge))
    assert code == 1 and "manifest.json" in err and peak < 300, (code, err, peak)


# -- 12: malformed manifests, refused members ---------------------------------------------------

@pytest.mark.parametrize("edit", [
    lambda m: m.update(entries=["not an object", 5]),
    lambda m: m["entries"][0].update(size="big"),
    lambda m: m.update(meta=[1, 2]),
    lambda m: m.update(meta={"meta/logs.txt": "x"}),
    lambda m: m.update(redactions="many"),
    lambda m: m.update(tool="distrodebug"),
    lambda m: m.update(target=[1]),
    lambda m: m.update(entries={"path": "x"}),
    lambda m: m["entries"][0].update(path=["a"]),
])
def test_malformed_manifests_are_refused_without_traceback(tmp_path: Path, edit: Any) -> None:
    path = bundle(tmp_path)
    with_manifest(path, edit)
    for args in (("verify", str(path)), ("report", str(path)),
                 ("extract", str(path), str(tmp_path / "x"), "--force")):
        code, _, err, _ = cli(*args)
        assert code == 1 and "Traceback" not in err and "manifest" in err, (args, code, err)


def test_malformed_processes_meta_is_reported_not_crashed(tmp_path: Path) -> None:
    path = bundle(tmp_path, **{"processes.json": [{"pid": "x", "cmdline": 5, "uid": {"a": 1}}, 3]})
    code, _, err, _ = cli("report", str(path))
    assert code == 0 and "Traceback" not in err, err


def test_extract_exits_non_zero_when_it_refused_members(tmp_path: Path) -> None:
    path = bundle(tmp_path, specs=[*SAMPLE, ("dev/null", "char", b"")])
    items = members(path)
    node = next(i for i, _ in items if i.name.startswith("fs/etc"))
    evil = tarfile.TarInfo("fs/../escape")
    evil.size = 1
    items.append((evil, b"x"))
    assert node
    rewrite(path, items)
    code, _, err, _ = cli("extract", str(path), str(tmp_path / "x"))
    assert code == 1 and "refused" in err, err
    assert not (tmp_path / "escape").exists()


# -- 19: the HTML report is as private as the bundle ----------------------------------------------

def test_html_report_is_private(tmp_path: Path) -> None:
    path = bundle(tmp_path)
    page = tmp_path / "r.html"
    page.write_text("old")
    page.chmod(0o644)
    code, _, err, _ = cli("report", str(path), "--html", str(page))
    assert code == 0, err
    assert stat.S_IMODE(page.stat().st_mode) == 0o600 and "<html" in page.read_text()


# -- 1: the output path is written to as what it is --------------------------------------------

def test_bundle_written_through_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = bytearray()

    def read() -> None:
        with open(fifo, "rb") as handle:
            got.extend(handle.read())

    reader = threading.Thread(target=read, daemon=True)  # a regression must not hang the run
    reader.start()
    info = DumpInfo(target={"name": "web"})
    result = write_bundle(fifo, io.BytesIO(tar_bytes(SAMPLE)), info, DumpOptions(compression="gz"))
    reader.join(30)
    assert stat.S_ISFIFO(fifo.lstat().st_mode)  # still a FIFO, not replaced by a file
    assert gzip.decompress(bytes(got)).startswith(b"meta/")
    assert result.path == str(fifo)
    assert [p.name for p in tmp_path.iterdir()] == ["pipe"]


@pytest.mark.skipif(os.geteuid() != 0, reason="creating a device node needs root")
def test_bundle_written_to_a_device_node_keeps_the_node(tmp_path: Path) -> None:
    node = tmp_path / "null"
    os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    write_bundle(node, io.BytesIO(tar_bytes(SAMPLE)), DumpInfo(), DumpOptions())
    assert stat.S_ISCHR(node.lstat().st_mode)


def test_bundle_written_through_a_symlink_keeps_the_link(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    link = tmp_path / "b.tar"
    link.symlink_to("real/incident.tar")
    write_bundle(link, io.BytesIO(tar_bytes(SAMPLE)), DumpInfo(), DumpOptions())
    assert link.is_symlink() and (tmp_path / "real" / "incident.tar").stat().st_size > 0


def test_bundle_to_stdout(tmp_path: Path, capfd: pytest.CaptureFixture[bytes]) -> None:
    result = write_bundle("-", io.BytesIO(tar_bytes(SAMPLE)), DumpInfo(), DumpOptions(compression="none"))
    out = capfd.readouterr().out
    assert result.path == "-" and b"manifest.json" in out.encode("utf-8", "surrogateescape")
    assert not list(tmp_path.iterdir())


# -- 9: a dump that captured nothing asked for -----------------------------------------------------

def test_paths_that_match_nothing_are_an_error_and_leave_nothing(tmp_path: Path) -> None:
    out = tmp_path / "b.tar"
    with pytest.raises(BundleError, match="/nope"):
        write_bundle(out, io.BytesIO(tar_bytes(SAMPLE)), DumpInfo(), DumpOptions(paths=("/nope",)))
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("exclude", ["app", "/app/*", "*.py"])
def test_a_path_left_out_by_exclude_says_so_not_that_nothing_matched(tmp_path: Path,
                                                                      exclude: str) -> None:
    """/app/main.py is there: saying nothing matches it sent people looking for a missing file."""
    out = tmp_path / "b.tar"
    options = DumpOptions(paths=("/app/main.py",), excludes=(exclude,))
    with pytest.raises(BundleError) as caught:
        write_bundle(out, io.BytesIO(tar_bytes(SAMPLE)), DumpInfo(), options)
    said = caught.value.paragraph()
    assert f"--exclude {exclude}" in said and "matches nothing" not in said
    assert "Nothing in the target matches" not in said
    assert not list(tmp_path.iterdir())


def test_a_path_with_no_change_under_changed_only_says_so(tmp_path: Path) -> None:
    info = DumpInfo(changes={"etc/passwd": "changed"})
    with pytest.raises(BundleError, match="changed-only"):
        write_bundle(tmp_path / "b.tar", io.BytesIO(tar_bytes(SAMPLE)), info,
                     DumpOptions(paths=("/app",), changed_only=True))


@pytest.mark.parametrize("value", ["-1", "1e30", "nan", "inf"])
def test_absurd_max_file_size_is_a_usage_error(tmp_path: Path, value: str) -> None:
    code, _, err, _ = cli("dump", "web", "-f", str(tmp_path / "b.tar"), "--max-file-size", value)
    assert code == 2 and "max-file-size" in err, err


def test_non_utf8_path_is_a_usage_error(tmp_path: Path) -> None:
    code, _, err, _ = cli("dump", "web", "-f", str(tmp_path / "b.tar"),
                          "--path", os.fsdecode(b"/caf\xe9"))
    assert code == 2 and "--path" in err and "Traceback" not in err, err


# -- 13: a broken stdout pipe is 141, not "check failed" --------------------------------------------

@pytest.mark.parametrize("command", ["verify", "report"])
def test_broken_stdout_pipe_is_141_not_check_failed(tmp_path: Path, command: str) -> None:
    """`distrodebug verify B | head -c1`: the reader gone made click exit 1, which for verify
    means the bundle failed its check."""
    path = bundle(tmp_path)
    read, write = os.pipe()
    os.close(read)  # the reader went away before a byte was written
    try:
        proc = subprocess.run([sys.executable, "-m", "distrodebug", command, str(path)],
                              stdout=write, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write)
    assert proc.returncode == 141, proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr
