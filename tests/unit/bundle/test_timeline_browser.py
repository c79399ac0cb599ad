"""The timeline section of the HTML report in a real headless Chromium."""

from __future__ import annotations

import io
import json
from pathlib import Path

from distrodebug.bundle.options import DumpOptions
from distrodebug.bundle.report import load_bundle, render_html, summarize_bundle
from distrodebug.bundle.timeline import build_timeline
from distrodebug.bundle.writer import DumpInfo, write_bundle
from tests.unit.bundle.test_format import tar_bytes
from tests.unit.bundle.test_report_browser import _Elements, chromium, run_chromium
from tests.unit.bundle.test_timeline import EVIL, _meta, _state


def test_timeline_section_renders_in_chromium(tmp_path: Path) -> None:
    binary = chromium()
    out = tmp_path / "b.tar"
    info = DumpInfo(target={"name": "web", "created": "2026-11-30T07:00:00Z"},
                    meta={"processes.json": json.loads(_meta()["processes.json"]),
                          "runtime-state.json": json.loads(_state()),
                          "logs.txt": f"2026-11-30T07:06:00Z panic {EVIL}\n"})
    write_bundle(out, io.BytesIO(tar_bytes([(f"tmp/{EVIL}", "file", b"x")])), info, DumpOptions())
    loaded = load_bundle(out)
    page = tmp_path / "report.html"
    page.write_text(render_html(summarize_bundle(out, loaded),
                                build_timeline(loaded.manifest, loaded.meta)))
    dom = run_chromium(binary, tmp_path / "profile", "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    text = dom.stdout
    assert "Timeline (" in text and "Back-off restarting" in text and "process 9 started" in text
    elements = _Elements()
    elements.feed(text)
    assert {"svg", "circle", "title"} <= elements.tags
    assert "script" not in elements.tags and not elements.handlers
    assert "&lt;script&gt;x&lt;/script&gt;" in text
    shot = tmp_path / "timeline.png"
    done = run_chromium(binary, tmp_path / "profile2", f"--screenshot={shot}",
                        "--window-size=1200,2000", page.as_uri())
    assert done.returncode == 0 and shot.stat().st_size > 10_000, done.stderr[-2000:]
