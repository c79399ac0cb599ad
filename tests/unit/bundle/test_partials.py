"""Partial bundles of killed dumps are recorded while written, and only dead owners' are removed."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from distrodebug import labels
from distrodebug.bundle import partials
from distrodebug.bundle.options import DumpOptions
from distrodebug.bundle.writer import DumpInfo, write_bundle
from tests.unit.bundle.test_format import SAMPLE, tar_bytes


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return tmp_path


def test_a_finished_dump_leaves_no_record(tmp_path: Path) -> None:
    write_bundle(tmp_path / "b.tar", io.BytesIO(tar_bytes(SAMPLE)), DumpInfo(target={}),
                 DumpOptions())
    assert partials.found() == []


def test_dead_owners_partials_go_live_ones_stay(tmp_path: Path) -> None:
    dead = tmp_path / ".x.tar.zst.partial-0123abcd"
    live = tmp_path / ".y.tar.zst.partial-4567abcd"
    for path in (dead, live):
        path.write_bytes(b"half a bundle")
    folder = partials.state_dir()
    folder.mkdir(parents=True)
    for path, pid in ((dead, "999999999"), (live, str(os.getpid()))):
        owner = {labels.OWNER_HOST: labels.this_host(), labels.OWNER_PID: pid}
        (folder / f"{pid}-{path.name[-8:]}.json").write_text(
            json.dumps({"path": str(path), "owner": owner}))
    gone = [p for p in partials.found() if not p.alive]
    assert [p.path for p in gone] == [dead]
    partials.remove(gone[0])
    assert not dead.exists() and live.exists()
    assert [p.path for p in partials.found()] == [live]


def test_a_record_never_removes_a_file_not_named_as_ours(tmp_path: Path) -> None:
    precious = tmp_path / "important.db"
    precious.write_bytes(b"keep me")
    folder = partials.state_dir()
    folder.mkdir(parents=True)
    owner = {labels.OWNER_HOST: labels.this_host(), labels.OWNER_PID: "999999999"}
    (folder / "1-evil.json").write_text(json.dumps({"path": str(precious), "owner": owner}))
    for partial in partials.found():
        partials.remove(partial)
    assert precious.read_bytes() == b"keep me" and partials.found() == []
