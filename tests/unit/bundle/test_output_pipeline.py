"""The bundle's worker thread (large files hashed and written beside the socket reads): failures,
interrupts, files larger than everything in flight. Also the dump's background metadata read.

Pure logic against real files, real zstd and gzip; no engine.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from distrodebug.bundle import contents, fscopy
from distrodebug.bundle import output as output_module
from distrodebug.bundle.format import verify_bundle
from distrodebug.bundle.options import DumpOptions
from distrodebug.bundle.output import Output
from distrodebug.bundle.writer import DumpInfo, write_bundle
from distrodebug.errors import BundleError
from tests.unit.bundle.test_format import entries, read_manifest, tar_bytes


@pytest.fixture(autouse=True)
def _private_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Partial-bundle records go to a folder of this test's own."""
    state = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    return state


def _workers() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("distrodebug-")]


def _left_behind(folder: Path) -> list[str]:
    """Everything in ``folder`` but the state folder, plus partial-bundle records."""
    found = [p.name for p in folder.iterdir() if p.name != "state"]
    records = folder / "state" / "distrodebug" / "partial"
    return found + [p.name for p in records.glob("*")] if records.exists() else found


def _wait_for_no_workers() -> list[str]:
    deadline = time.monotonic() + 5
    while _workers() and time.monotonic() < deadline:
        time.sleep(0.01)
    return _workers()


class _FailingHash:
    """A sha256 that fails once it is fed on the worker (as a broken hash library would)."""

    def __init__(self, data: bytes | memoryview = b"") -> None:
        self._real = hashlib.sha256(data)

    def update(self, data: bytes | memoryview) -> None:
        if threading.current_thread().name.startswith("distrodebug-"):
            raise RuntimeError("the worker broke")
        self._real.update(data)

    def hexdigest(self) -> str:
        return self._real.hexdigest()


def test_a_failure_on_the_worker_is_a_bundle_error_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = type("fake_hashlib", (), {"sha256": _FailingHash})
    monkeypatch.setattr(fscopy, "hashlib", fake)
    data = tar_bytes([("small", "file", b"x" * 100), ("big", "file", os.urandom(3 << 20))])
    with pytest.raises(BundleError, match=r"RuntimeError: the worker broke.*Nothing was left"):
        write_bundle(tmp_path / "b.tar.zst", io.BytesIO(data), DumpInfo(), DumpOptions())
    assert _left_behind(tmp_path) == []
    assert _wait_for_no_workers() == []


def test_a_failure_on_the_write_worker_is_raised_on_close() -> None:
    class Broken(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, data: Any) -> int:
            raise OSError(5, "Input/output error")

    out = Output(Broken(), None)  # type: ignore[arg-type]
    digest = hashlib.sha256()
    out.hash_write(digest, b"y" * 1000)
    with pytest.raises(OSError, match="Input/output error"):
        out.close()
    assert _wait_for_no_workers() == []


class _SlowSink(io.RawIOBase):
    """A compressor stand-in that takes its time, so the interrupt lands with work queued."""

    def __init__(self) -> None:
        self.written = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        time.sleep(0.002)
        self.written += len(data)
        return len(data)


class _InterruptedStream(io.RawIOBase):
    """Serves ``data`` and raises KeyboardInterrupt (Ctrl-C) once ``at`` bytes were read."""

    def __init__(self, data: bytes, at: int) -> None:
        self._data, self._at, self._pos = data, at, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._pos >= self._at:
            raise KeyboardInterrupt
        n = min(len(buffer), self._at - self._pos, 256 << 10)
        buffer[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


def test_an_interrupt_mid_write_removes_the_partial_bundle_and_stops_the_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = _SlowSink()
    monkeypatch.setattr(contents, "open_compressor", lambda raw, c, level: sink)
    data = tar_bytes([(f"f{i}", "file", os.urandom(1 << 20)) for i in range(12)])
    with pytest.raises(KeyboardInterrupt):
        write_bundle(tmp_path / "b.tar.zst", _InterruptedStream(data, 9 << 20), DumpInfo(), DumpOptions())
    assert sink.written > 0  # the interrupt came while the workers were writing
    assert _left_behind(tmp_path) == []
    assert _wait_for_no_workers() == []


def _pipeline_capacity() -> int:
    """Bytes that can be in flight at once: read buffers plus the queue of pieces."""
    piece = max(fscopy.PIECE, output_module.STAGE)
    return output_module.READ_BUFFERS * output_module.READ_BUFFER + output_module.IN_FLIGHT * piece


@pytest.mark.parametrize("name", ["b.tar.zst", "b.tar.gz", "b.tar"])
def test_a_file_larger_than_the_pipeline_hashes_exactly(tmp_path: Path, name: str) -> None:
    size = _pipeline_capacity() + (3 << 20) + 123  # not a multiple of anything in the pipeline
    big = os.urandom(size)
    small = [(f"s/{i}", "file", os.urandom(i * 37)) for i in range(50)]
    data = tar_bytes([*small[:25], ("big", "file", big), *small[25:]])
    out = tmp_path / name
    result = write_bundle(out, io.BufferedReader(io.BytesIO(data)), DumpInfo(), DumpOptions())
    by_path = entries(read_manifest(out))
    assert by_path["big"]["sha256"] == hashlib.sha256(big).hexdigest()
    assert by_path["big"]["size"] == size and by_path["big"]["status"] == "ok"
    for path, _, content in small:
        assert by_path[path]["sha256"] == hashlib.sha256(content).hexdigest(), path
    assert result.files == 51
    assert verify_bundle(out).ok
    assert _wait_for_no_workers() == []
