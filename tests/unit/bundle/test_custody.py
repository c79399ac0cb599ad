"""The custody record (redacted command line, phases in order) and the custody log (append-only
lines, hash chain, no symlink or hard link followed)."""

from __future__ import annotations

import io
import json
import os
import platform
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from distrodebug.bundle import custody
from distrodebug.bundle.format import verify_bundle
from distrodebug.bundle.options import DumpOptions
from distrodebug.bundle.redact import REDACTED
from distrodebug.bundle.writer import DumpInfo, write_bundle


def test_command_line_hides_the_key_and_secrets() -> None:
    argv = ["distrodebug", "dump", "web", "-f", "x.tar", "--sign", "/home/me/.ssh/id_ed25519",
            "--sign=/k", "DB_PASSWORD=hunter2", "--token", "abc"]
    line = custody.command_line(argv)
    assert "/home/me/.ssh/id_ed25519" not in line and "/k" not in " ".join(line)
    assert line[5:8] == ["--sign", "<private key, not recorded>", "--sign=<private key, not recorded>"]
    assert f"DB_PASSWORD={REDACTED}" in line and "hunter2" not in line and "abc" not in line


def test_record_phases_and_finish() -> None:
    record = custody.Record(["distrodebug", "dump"], target={"container_id": "c1"})
    with record.phase("identity", "inspect"):
        pass
    record.skipped("volatile", "processes", "the target is exited")
    with pytest.raises(RuntimeError), record.phase("records", "logs"):
        raise RuntimeError("boom")
    record.phase_started("filesystem", "files")
    done = record.finish()
    names = [(p["name"], p["status"]) for p in done["phases"]]
    assert names == [("identity", "ok"), ("volatile", "skipped: the target is exited"),
                     ("records", "failed"), ("filesystem", "ok")]
    assert all(p["ended"] for p in done["phases"])
    assert done["started"] <= done["phases"][0]["started"] <= done["ended"]
    assert done["collector"]["uid"] == os.getuid() and done["target"] == {"container_id": "c1"}
    assert done["clock"]["synchronized"] in (True, False, None)
    assert custody.target_record({"container_id": "c", "labels": {"a": "b"}, "pod_uid": "u"}) == {
        "container_id": "c", "pod_uid": "u"}


def test_writer_puts_the_record_in_the_manifest(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("etc/hostname")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"web\n"))
    record = custody.Record(["distrodebug", "dump"])
    record.phase_started("filesystem", "files")
    out = tmp_path / "b.tar"
    result = write_bundle(out, io.BytesIO(buf.getvalue()), DumpInfo(custody=record.finish),
                          DumpOptions())
    with tarfile.open(out) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert manifest["custody"]["phases"][0]["name"] == "filesystem"
    verified = verify_bundle(out)
    assert verified.ok and verified.digest == result.digest
    assert verified.custody == manifest["custody"]


def test_log_appends_lines_in_a_chain(tmp_path: Path) -> None:
    bundle = tmp_path / "b.tar"
    first = custody.append(bundle, "collected", "ok", "ab" * 32, {"bundle": "b.tar"})
    custody.append(bundle, "verified", "ok", "ab" * 32)
    custody.append(bundle, "extracted", "failed", "ab" * 32, {"dest": "/x"})
    path = custody.log_path(bundle)
    assert (path.stat().st_mode & 0o777) == 0o600
    assert first["prev"] is None and first["digest"] == "sha256:" + "ab" * 32
    log = custody.read_log(bundle)
    assert log.chain_ok and [e["action"] for e in log.entries] == ["collected", "verified", "extracted"]
    lines = path.read_bytes().splitlines()
    path.write_bytes(b"\n".join([lines[0], lines[2]]) + b"\n")  # a line removed in the middle
    broken = custody.read_log(bundle)
    assert not broken.chain_ok and "line 2" in broken.problem
    assert custody.read_log(tmp_path / "none.tar").problem == "no custody log"


def test_log_refuses_symlinks_and_hard_links(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    bundle = tmp_path / "b.tar"
    custody.log_path(bundle).symlink_to(victim)
    with pytest.raises(custody.LogRefused, match="symbolic link"):
        custody.append(bundle, "verified", "ok", None)
    dangling = tmp_path / "c.tar"
    custody.log_path(dangling).symlink_to(tmp_path / "would-be-created")
    warnings: list[str] = []
    custody.record_safely(dangling, "verified", "ok", None, None, warnings.append)
    assert warnings and not (tmp_path / "would-be-created").exists()
    linked = tmp_path / "d.tar"
    os.link(victim, custody.log_path(linked))
    with pytest.raises(custody.LogRefused, match="one link"):
        custody.append(linked, "verified", "ok", None)
    assert victim.read_text() == "keep\n"
    assert not custody.read_log(bundle).chain_ok


def test_a_damaged_bundle_is_logged_before_the_error(tmp_path: Path) -> None:
    from distrodebug.bundle import evidence
    from distrodebug.errors import BundleDamaged

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("etc/hostname")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"web\n"))
    out = tmp_path / "b.tar.zst"
    write_bundle(out, io.BytesIO(buf.getvalue()), DumpInfo(), DumpOptions())
    found = evidence.verify(out)
    assert found.exit_code == 0 and found.log.entries[-1]["action"] == "verified"
    out.write_bytes(out.read_bytes()[:-40])
    with pytest.raises(BundleDamaged):
        evidence.verify(out)
    with pytest.raises(BundleDamaged):
        evidence.extract(out, tmp_path / "x")
    log = custody.read_log(out)
    assert [(e["action"], e["result"]) for e in log.entries] == [
        ("verified", "ok"), ("verified", "damaged"), ("extracted", "damaged")]
    assert log.chain_ok and "truncated" in log.entries[1]["detail"]["why"]


def test_report_shows_the_custody_record(tmp_path: Path) -> None:
    from distrodebug.bundle.report import render_html, summarize_bundle

    record = custody.Record(["distrodebug", "dump", "<web>"], target={"container_id": "c1"})
    record.phase_started("filesystem", "files")
    out = tmp_path / "b.tar"
    write_bundle(out, io.BytesIO(b"\0" * 1024), DumpInfo(custody=record.finish), DumpOptions())
    summary = summarize_bundle(out)
    assert summary.custody is not None and summary.custody["phases"][0]["name"] == "filesystem"
    page = render_html(summary)
    assert "Chain of custody" in page and "&lt;web&gt;" in page and "<web>" not in page


@pytest.mark.skipif(shutil.which("gcc") is None or platform.system() != "Linux", reason="needs gcc, Linux")
def test_clock_state_matches_adjtimex_from_c(tmp_path: Path) -> None:
    """The struct offsets read through ctypes agree with the C library's own struct timex."""
    source = tmp_path / "t.c"
    source.write_text(
        "#include <stdio.h>\n#include <sys/timex.h>\n"
        "int main(void){struct timex t={0}; int s=adjtimex(&t);"
        " printf(\"%d %d %ld\\n\", s, t.status, t.maxerror); return 0;}\n")
    subprocess.run(["gcc", "-o", str(tmp_path / "t"), str(source)], check=True)
    state, status, maxerror = map(int, subprocess.run([str(tmp_path / "t")], capture_output=True,
                                                      text=True, check=True).stdout.split())
    found = custody.clock()
    assert found["synchronized"] == (state != 5 and not status & 0x40)
    assert abs(found["max_error_us"] - maxerror) <= 1_000_000  # it grows while unsynchronised
