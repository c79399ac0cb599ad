"""The record and require_reason settings: config file, environment over it, bad values refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from distrodebug.audit.recording import Recorder, replay
from distrodebug.errors import UsageError
from distrodebug.settings import load_settings


def test_defaults_config_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config.toml"
    monkeypatch.setenv("DISTRODEBUG_CONFIG", str(config))
    monkeypatch.delenv("DISTRODEBUG_RECORD", raising=False)
    monkeypatch.delenv("DISTRODEBUG_REQUIRE_REASON", raising=False)
    settings = load_settings()
    assert settings.record and not settings.require_reason
    config.write_text("record = false\nrequire_reason = true\n")
    settings = load_settings()
    assert not settings.record and settings.require_reason
    monkeypatch.setenv("DISTRODEBUG_RECORD", "yes")
    monkeypatch.setenv("DISTRODEBUG_REQUIRE_REASON", "0")
    settings = load_settings()
    assert settings.record and not settings.require_reason
    monkeypatch.setenv("DISTRODEBUG_RECORD", "maybe")
    with pytest.raises(UsageError):
        load_settings()
    monkeypatch.delenv("DISTRODEBUG_RECORD")
    config.write_text('record = "no"\n')
    with pytest.raises(UsageError):
        load_settings()


def test_replay_caps_pauses_and_follows_speed(private_state: Path, tmp_path: Path) -> None:
    ticks = iter([0.0, 1.0, 11.0, 12.0])
    recorder = Recorder.create("s", rows=24, cols=80, title="t", term="xterm",
                               clock=lambda: next(ticks))
    recorder.output(b"a\n")   # at 1 s
    recorder.output(b"b\n")   # at 11 s
    recorder.close()
    slept: list[float] = []
    with open(tmp_path / "out", "wb") as out:
        replay(recorder.path, out.fileno(), speed=2.0, max_wait=3.0, sleep=slept.append)
    assert slept == [0.5, 3.0]
    assert (tmp_path / "out").read_bytes() == b"a\nb\n"
