"""The dump's streaming path piece by piece: attach demultiplexing, the zero-copy tar reader,
the header codec, and write_bundle's worker thread, on streams that arrive in awkward pieces."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import struct
import tarfile
from pathlib import Path
from typing import Any

import pytest

from distrodebug.bundle import contents, fscopy
from distrodebug.bundle import manifest as manifest_module
from distrodebug.bundle import output as output_module
from distrodebug.bundle.format import verify_bundle
from distrodebug.bundle.options import DumpOptions
from distrodebug.bundle.tar.header import build_block, parse_block
from distrodebug.bundle.tar.reader import MARK_SUFFIX_BATCH, TarReader
from distrodebug.bundle.writer import DumpInfo, write_bundle
from distrodebug.capture import SidecarOutput
from distrodebug.errors import BundleError
from distrodebug.model import STDERR, STDOUT
from distrodebug.runtimes.docker.stream import DockerStream
from tests.unit.bundle.test_format import entries, framed, read_manifest, tar_bytes

# -- Docker's attach stream ------------------------------------------------------------------------


class _Channel:
    """A socket double that returns the stream in pieces of random size, with recv only (as a
    paramiko channel for ssh:// engines)."""

    def __init__(self, data: bytes, seed: int, most: int) -> None:
        self._data, self._pos, self._rand, self._most = data, 0, random.Random(seed), most

    def settimeout(self, timeout: float | None) -> None:
        pass

    def _size(self, limit: int) -> int:
        return min(limit, self._rand.randint(1, self._most), len(self._data) - self._pos)

    def recv(self, limit: int) -> bytes:
        size = self._size(limit)
        self._pos += size
        return self._data[self._pos - size : self._pos]



class _Socket(_Channel):
    def recv_into(self, view: memoryview) -> int:
        data = self.recv(len(view))
        view[: len(data)] = data
        return len(data)


def _frames(seed: int, large: bool = True) -> tuple[bytes, bytes, bytes]:
    rand = random.Random(seed)
    muxed, out, err = bytearray(), bytearray(), bytearray()
    for _ in range(200 if large else 60):
        channel = rand.choice([1, 1, 1, 2, 0])
        payload = os.urandom(rand.choice([0, 1, 7, 8, 9, 100, 4096] + ([32768] if large else [])))
        muxed += struct.pack(">BxxxL", channel, len(payload)) + payload
        (err if channel == 2 else out).extend(payload)
    return bytes(muxed), bytes(out), bytes(err)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("most", [1, 9, 5000, 1 << 20])
def test_attach_stream_demultiplexes_in_place(seed: int, most: int) -> None:
    muxed, out, err = _frames(seed, large=most > 100)
    sock = _Socket(muxed, seed, most) if seed % 2 else _Channel(muxed, seed, most)
    stream = DockerStream(sock, tty=False)
    got, errors = bytearray(), bytearray()
    buffer = memoryview(bytearray(70000))
    while size := stream.readinto_stdout(buffer[: random.Random(seed).randint(1, 70000)], errors.extend):
        got += buffer[:size]
    assert bytes(got) == out and bytes(errors) == err


@pytest.mark.parametrize("most", [1, 9, 5000])
def test_attach_stream_recv_keeps_frames_across_reads(most: int) -> None:
    muxed, out, err = _frames(7, large=most > 100)
    stream = DockerStream(_Socket(muxed, 7, most), tty=False)
    got = {STDOUT: bytearray(), STDERR: bytearray()}
    while frames := stream.recv():
        for channel, data in frames:
            got[channel] += data
    assert bytes(got[STDOUT]) == out and bytes(got[STDERR]) == err


def test_attach_stream_with_tty_is_not_framed() -> None:
    data = os.urandom(10000)
    stream = DockerStream(_Socket(data, 1, 3000), tty=True)
    buffer, got = memoryview(bytearray(4096)), bytearray()
    while size := stream.readinto_stdout(buffer, lambda _: None):
        got += buffer[:size]
    assert bytes(got) == data


class _Frames:
    """What websocket-client hands the Kubernetes stream: one channel byte and a payload a frame."""

    def __init__(self, frames: list[tuple[int, bytes]]) -> None:
        self._frames = frames

    def recv_data(self, control_frame: bool = False) -> tuple[int, bytes]:
        import websocket

        if not self._frames:
            return websocket.ABNF.OPCODE_CLOSE, b""
        channel, payload = self._frames.pop(0)
        return websocket.ABNF.OPCODE_BINARY, bytes([channel]) + payload

    def getheaders(self) -> dict[str, str]:
        return {"Sec-WebSocket-Protocol": "v5.channel.k8s.io"}

    def getsubprotocol(self) -> str | None:
        return None


@pytest.mark.parametrize("direct", [True, False])
def test_sidecar_output_is_a_file_of_stdout(direct: bool) -> None:
    muxed, out, err = _frames(3)
    seen: list[bytes] = []
    if direct:
        stream: Any = DockerStream(_Socket(muxed, 3, 6000), tty=False)
    else:
        from distrodebug.runtimes.kubernetes.stream import WebSocketStream

        frames = [(STDOUT, out[i : i + 5000]) for i in range(0, len(out), 5000)]
        frames.insert(1, (STDERR, err))
        frames.insert(2, (3, b'{"metadata":{},"status":"Success"}'))
        stream = WebSocketStream(_Frames(frames))
    output = SidecarOutput(stream, seen.append)
    reader = io.BufferedReader(output, buffer_size=64 << 10)
    assert reader.read() == out
    assert bytes(output.stderr) == err and b"".join(seen) == err


# -- the header codec --------------------------------------------------------------------------------


def test_header_codec_agrees_with_tarfile() -> None:
    rand = random.Random(11)
    parsed = 0
    for _ in range(3000):
        info = tarfile.TarInfo(rand.choice(["a", "./x/y", "d/", "é/f", "p" * 100, "q" * 130]))
        info.type = rand.choice([tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE])
        info.size = rand.choice([0, 1, 4096, 8**11 - 1]) if info.type in tarfile.REGULAR_TYPES else 0
        info.mode, info.uid = rand.randrange(0o10000), rand.choice([0, 65532])
        info.mtime, info.linkname = rand.choice([0, 1_700_000_000]), rand.choice(["", "../t"])
        fmt: Any = rand.choice([tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
        try:
            block = bytearray(info.tobuf(fmt, "utf-8", "surrogateescape")[:512])
        except ValueError:
            continue  # ustar cannot hold the name
        if rand.random() < 0.3:
            block[rand.randrange(512)] = rand.randrange(256)  # damage: both must agree it is bad
        ours = parse_block(bytes(block))
        try:
            theirs = tarfile.TarInfo.frombuf(bytes(block), "utf-8", "surrogateescape")
        except tarfile.HeaderError:
            assert ours is None
            continue
        if ours is not None:
            parsed += 1
            # A directory whose whole name sits in the ustar prefix keeps a "/" in tarfile only.
            name = ours[0] if ours[0] == theirs.name.rstrip("/") else theirs.name
            assert ours == (
                name, theirs.type, theirs.mode, theirs.uid, theirs.gid, theirs.size, theirs.mtime,
                theirs.linkname, theirs.devmajor, theirs.devminor,
            )  # fmt: skip
        built = build_block(info.name, info.type, info.mode, info.uid, info.gid, info.size, info.mtime,
                            info.linkname)  # fmt: skip
        if built is not None:
            again = tarfile.TarInfo.frombuf(built, "utf-8", "strict")
            assert (again.name.rstrip("/"), again.size, again.linkname, again.mode) == (
                info.name.rstrip("/"), info.size, info.linkname, info.mode,
            )  # fmt: skip
    assert parsed > 1000


# -- the tar reader on streams cut anywhere ------------------------------------------------------------


class _Dribble(io.RawIOBase):
    def __init__(self, data: bytes, seed: int, most: int) -> None:
        self._data, self._pos, self._rand, self._most = data, 0, random.Random(seed), most

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        size = min(len(buffer), self._rand.randint(1, self._most), len(self._data) - self._pos)
        buffer[:size] = self._data[self._pos : self._pos + size]
        self._pos += size
        return size


NONCE = "0123456789abcdef" * 2


@pytest.mark.parametrize("size", [700, 4096, 300_000])
def test_cut_anywhere_near_the_end_of_a_member(size: int) -> None:
    """busybox tar died after ``cut`` content bytes: whatever the offset, the member ends there
    and every member of the next batch is found (the nonce may straddle content and padding)."""
    content = os.urandom(size)
    whole = tar_bytes([("a", "file", content)], zeros=False)
    after = tar_bytes([(f"b{i}", "file", os.urandom(i * 100)) for i in range(5)])
    for cut in sorted({0, 1, size // 2, *range(max(0, size - 40), size)}):
        stream = framed(whole[: 512 + cut], after, nonce=NONCE)
        for most in (1 << 20, 3000, 33) if size < 10_000 else (1 << 20, 7000):
            reader = TarReader(io.BufferedReader(_Dribble(stream, cut, most)), buffer_size=1 << 17)
            found: dict[str, tuple[bytes, bool]] = {}
            for member in reader.members():
                data = b"".join(reader.views(gather=rand_gather(cut)))
                found[member.name] = (data, reader.truncated)
            assert found["a"] == (content[:cut], True), (cut, most)
            assert [found[f"b{i}"][0] for i in range(5)] == [after_content(after, i) for i in range(5)]
            assert reader.ended and not reader.resyncs


def rand_gather(seed: int) -> int:
    return random.Random(seed).choice([1, 100, 1 << 16, 1 << 20])


def after_content(archive: bytes, index: int) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        fileobj = tar.extractfile(f"b{index}")
        assert fileobj is not None
        return fileobj.read()


def test_views_stay_valid_after_later_reads() -> None:
    contents = [os.urandom(n) for n in (10, 70_000, 200_000, 5)]
    stream = tar_bytes([(f"f{i}", "file", c) for i, c in enumerate(contents)])
    reader = TarReader(io.BufferedReader(_Dribble(stream, 1, 9000)), buffer_size=1 << 17)
    kept = [list(reader.views()) for _ in reader.members()]
    assert [b"".join(views) for views in kept] == contents


def test_whole_gives_small_members_in_one_view() -> None:
    stream = framed(tar_bytes([("s", "file", b"x" * 1000), ("t", "file", b"")]), nonce=NONCE)
    reader = TarReader(io.BytesIO(stream))
    got = [(m.name, reader.whole()) for m in reader.members()]
    assert [(name, bytes(view) if view is not None else None) for name, view in got] == [
        ("s", b"x" * 1000),
        ("t", b""),
    ]


def test_nonce_in_the_first_marker_only() -> None:
    """A member named like a marker but not first does not make a plain stream framed."""
    fake = tarfile.TarInfo(NONCE + MARK_SUFFIX_BATCH).tobuf(tarfile.USTAR_FORMAT)
    stream = tar_bytes([("a", "file", b"1")]) + fake + tar_bytes([("b", "file", b"2")])
    reader = TarReader(io.BytesIO(stream))
    assert [m.name for m in reader.members()] == ["a", NONCE + MARK_SUFFIX_BATCH, "b"]
    assert not reader.framed


# -- write_bundle's worker thread and buffer recycling -----------------------------------------------


@pytest.fixture
def tiny_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Buffers, pieces and queue far smaller than the content: every buffer is recycled often.

    Each size is set by name on the module that owns it: a renamed one fails here instead of
    being left at its real size."""
    sizes = {
        output_module: {"READ_BUFFER": 1 << 17, "READ_BUFFERS": 2, "STAGE": 8192, "IN_FLIGHT": 2,
                        "WRITEBACK": 100_000},
        fscopy: {"READ_BUFFER": 1 << 17, "OFFLOAD": 20_000, "PIECE": 50_000},
        manifest_module: {"MANIFEST_BATCH": 3},
    }
    for module, values in sizes.items():
        for name, value in values.items():
            monkeypatch.setattr(module, name, value)


@pytest.mark.parametrize("name", ["b.tar", "b.tar.zst", "b.tar.gz"])
@pytest.mark.usefixtures("tiny_pipeline")
def test_recycled_buffers_never_corrupt_content(tmp_path: Path, name: str) -> None:
    rand = random.Random(5)
    contents = {f"d/f{i}": os.urandom(rand.choice([0, 3, 5000, 30_000, 300_000])) for i in range(60)}
    whole = tar_bytes([(p, "file", c) for p, c in contents.items()], zeros=False)
    cut = whole[: whole.index(b"d/f7\0") + 512 + 1234]  # f7 shrank while it was read
    stream = framed(cut, tar_bytes([(p, "file", c) for p, c in contents.items()]), nonce=NONCE)
    out = tmp_path / name
    write_bundle(out, io.BufferedReader(_Dribble(stream, 2, 70_000)), DumpInfo(), DumpOptions())
    by_path = entries(read_manifest(out))
    for path, content in contents.items():
        entry = by_path[path]
        if path == "d/f7" and len(content) > 1234:
            stored = content[:1234] + bytes(len(content) - 1234)
            assert entry["status"] == "partial"
        else:
            stored = content
            assert entry["status"] == "ok"
        assert entry["sha256"] == hashlib.sha256(stored).hexdigest(), path
    assert verify_bundle(out).ok


@pytest.mark.usefixtures("tiny_pipeline")
def test_manifest_written_in_batches_is_the_same_json(tmp_path: Path) -> None:
    specs = [(f"é{i}", "file", b"x" * i) for i in range(10)] + [("d", "dir", None), ("l", "symlink", "é")]
    out = tmp_path / "b.tar"
    write_bundle(out, io.BytesIO(tar_bytes(specs)), DumpInfo(changes={"é1": "added"}), DumpOptions())
    manifest = read_manifest(out)
    expected = {"path": "é1", "type": "file", "mode": "0644", "uid": 0, "gid": 0, "size": 1,
                "mtime": 1_700_000_000, "sha256": hashlib.sha256(b"x").hexdigest(), "change": "added",
                "status": "ok"}  # fmt: skip
    assert entries(manifest)["é1"] == expected
    with tarfile.open(out) as tar:
        fileobj = tar.extractfile("manifest.json")
        assert fileobj is not None
        text = fileobj.read().decode()
    line = " " + json.dumps(expected, separators=(", ", ": "))
    assert line + "," in text.splitlines() or line in text.splitlines()


def test_disk_full_on_the_worker_removes_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Full(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, data: Any) -> int:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(contents, "open_compressor", lambda raw, c, level: _after(Full(), 600_000))
    data = tar_bytes([(f"f{i}", "file", os.urandom(400_000)) for i in range(8)])
    with pytest.raises(BundleError, match="disk is full"):
        write_bundle(tmp_path / "b.tar", io.BytesIO(data), DumpInfo(), DumpOptions())
    assert list(tmp_path.iterdir()) == []


class _after(io.RawIOBase):  # noqa: N801 - reads as a phrase at the call site
    """Accept ``limit`` bytes, then hand every write to ``then``."""

    def __init__(self, then: io.RawIOBase, limit: int) -> None:
        self._then, self._left = then, limit

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if self._left > 0:
            self._left -= len(data)
            return len(data)
        return int(self._then.write(data) or 0)


@pytest.mark.parametrize("size", [3000, 400_000])
def test_member_cut_just_before_its_end(tmp_path: Path, size: int) -> None:
    """The marker that follows a cut may start in the last bytes of the content and end in the
    padding: the member is partial and the next batch is complete, with no damage reported."""
    whole = tar_bytes([("a", "file", b"A" * size)], zeros=False)
    nxt = tar_bytes([(f"b{i}", "file", b"B" * 10) for i in range(3)])
    out = tmp_path / "b.tar"
    write_bundle(out, io.BytesIO(framed(whole[: 512 + size - 1], nxt, nonce=NONCE)), DumpInfo(),
                 DumpOptions())  # fmt: skip
    manifest = read_manifest(out)
    by_path = entries(manifest)
    assert by_path["a"]["status"] == "partial" and f"{size - 1} of {size}" in by_path["a"]["reason"]
    assert all(by_path[f"b{i}"]["status"] == "ok" for i in range(3))
    assert manifest["warnings"] == [] and verify_bundle(out).ok
