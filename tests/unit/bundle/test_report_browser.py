"""The HTML report in a real headless Chromium: it renders, and hostile names stay text."""

from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from distrodebug.bundle.report import render_html, summarize_bundle
from tests.unit.bundle.test_report import EVIL, _bundle


class _Elements(HTMLParser):
    """The tags and event-handler attributes of the DOM Chromium built."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.handlers: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.handlers += [name for name, _ in attrs if name.startswith("on")]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        if os.environ.get("DISTRODEBUG_REQUIRE_ENGINE") == "1":
            pytest.fail("chromium is not installed, and this run requires it (scripts/setup.sh "
                        "installs it with DISTRODEBUG_WITH_BROWSER=1)")
        pytest.skip("chromium is not installed")
    return found


def run_chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}"]
    return subprocess.run([binary, *flags, *args], capture_output=True, text=True, timeout=120)


def test_report_renders_in_chromium_and_runs_no_script(tmp_path: Path) -> None:
    binary = chromium()
    page = tmp_path / "report.html"
    page.write_text(render_html(summarize_bundle(_bundle(tmp_path))))
    dom = run_chromium(binary, tmp_path / "profile", "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    text = dom.stdout
    assert "etc/passwd" in text or "data/f29" in text
    # The hostile file name is shown as text: its markup is escaped, never parsed into elements.
    assert "&lt;script&gt;" in text
    elements = _Elements()
    elements.feed(text)
    assert "script" not in elements.tags and "img" not in elements.tags
    assert not elements.handlers
    shot = tmp_path / "report.png"
    done = run_chromium(binary, tmp_path / "profile2", f"--screenshot={shot}", "--window-size=1200,900",
                        page.as_uri())
    assert done.returncode == 0 and shot.stat().st_size > 10_000, done.stderr[-2000:]
    assert EVIL  # the fixture's hostile name is what we looked for
