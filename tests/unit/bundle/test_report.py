"""summarize_bundle and render_html: plain fields, and a page that a hostile name cannot break."""

from __future__ import annotations

import io
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from distrodebug.bundle.options import DumpOptions
from distrodebug.bundle.report import LARGEST, render_html, summarize_bundle
from distrodebug.bundle.writer import DumpInfo, write_bundle
from distrodebug.errors import BundleError
from tests.unit.bundle.test_format import Spec, tar_bytes

EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def _bundle(tmp_path: Path) -> Path:
    specs: list[Spec] = [("etc", "dir", None), ("etc/passwd", "file", b"root\n")]
    specs += [(f"data/f{i:02d}", "file", b"x" * (i * 100)) for i in range(30)]
    specs += [(f"tmp/{EVIL}", "file", b"evil"), ("run/fifo", "fifo", None)]
    processes = [
        {"pid": 1, "ppid": 0, "uid": 0, "name": "app", "cmdline": ["app", EVIL], "cwd": "/",
         "exe": "/app", "fds": [{"fd": 3, "target": "socket:[11]"}]},
    ]  # fmt: skip
    sockets = [
        {"proto": "tcp", "local_address": "0.0.0.0", "local_port": 8080, "remote_address":
         "0.0.0.0", "remote_port": 0, "state": "LISTEN", "inode": 11,
         "processes": [{"pid": 1, "fd": 3, "name": "app"}]},
        {"proto": "tcp", "local_address": "10.0.0.2", "local_port": 8080, "remote_address":
         "10.0.0.9", "remote_port": 5000, "state": "ESTABLISHED", "inode": 12, "processes": []},
        {"proto": "unix", "type": "stream", "state": "LISTEN", "inode": 13, "path": "/run/s"},
    ]  # fmt: skip
    mounts = [{"mount_point": "/data", "fstype": "ext4", "source": "/dev/vda", "options": "rw"}]
    info = DumpInfo(
        target={"name": f"web{EVIL}", "image": "app:1", "container_id": "abc"},
        meta={"processes.json": processes, "sockets.json": sockets, "mounts.json": mounts},
        changes={"etc/passwd": "changed", f"tmp/{EVIL}": "added", "etc/shadow": "deleted"},
    )
    out = tmp_path / "b.tar.zst"
    write_bundle(out, io.BytesIO(tar_bytes(specs)), info, DumpOptions())
    return out


def test_summary_fields(tmp_path: Path) -> None:
    summary = summarize_bundle(_bundle(tmp_path))
    assert summary.target["image"] == "app:1" and len(summary.digest) == 64
    assert summary.by_type == {"dir": 1, "file": 32, "fifo": 1, "None": 1}
    assert summary.by_status == {"ok": 33, "skipped": 1, "deleted": 1}
    assert summary.by_change == {"changed": 1, "added": 1, "deleted": 1}
    assert {r.path for r in summary.changed} == {"etc/passwd", f"tmp/{EVIL}", "etc/shadow"}
    assert len(summary.largest) == LARGEST
    assert [r.path for r in summary.largest[:2]] == ["data/f29", "data/f28"]
    assert [r.path for r in summary.skipped] == ["run/fifo"]
    assert [p["pid"] for p in summary.processes] == [1]
    assert [s["local_port"] if s["proto"] == "tcp" else s["path"] for s in summary.listening] == [
        8080,
        "/run/s",
    ]
    assert [s["remote_address"] for s in summary.connections] == ["10.0.0.9"]
    assert summary.mounts[0]["mount_point"] == "/data"


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attrs: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attrs.update(name for name, _ in attrs)


def test_html_is_self_contained_and_escaped(tmp_path: Path) -> None:
    page = render_html(summarize_bundle(_bundle(tmp_path)))
    parser = _Tags()
    parser.feed(page)
    assert "script" not in parser.tags and "img" not in parser.tags
    assert not parser.attrs & {"src", "href", "onerror", "onload"}
    assert "&lt;script&gt;" in page
    assert not re.search(r"https?://", page.replace("http-equiv", ""))
    assert "default-src 'none'" in page
    for text in ("Changed files (3)", "Listening sockets (2)", "0.0.0.0:8080", "1 app"):
        assert text in page


def test_summary_of_a_broken_bundle(tmp_path: Path) -> None:
    path = tmp_path / "x.tar"
    path.write_bytes(b"\0" * 1024)
    with pytest.raises(BundleError, match="no manifest"):
        summarize_bundle(path)
