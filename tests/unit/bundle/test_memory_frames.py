"""The memory stream's frames: parsed into cores, and refused when damaged or forged."""

from __future__ import annotations

import base64
import io
import struct
from pathlib import Path

import pytest

from distrodebug.bundle import memory, memscript

NONCE = b"0123456789abcdef0123456789abcdef"
MAPS = (b"00400000-00402000 r-xp 00000000 08:01 1234 /usr/bin/app\n"
        b"7f0000000000-7f0000001000 ---p 00000000 00:00 0 \n"
        b"7ffffffde000-7ffffffdf000 rw-p 00000000 00:00 0 [stack]\n")
EXE = b"\x7fELF\x02\x01\x01" + bytes(11) + struct.pack("<H", 62) + bytes(44)


def b64(data: bytes) -> bytes:
    return base64.b64encode(data) + b"-"


def p_line(pid: int = 7, comm: bytes = b"app") -> bytes:
    status = b"Name:\t" + comm + b"\nState:\tS (sleeping)\nPPid:\t1\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n"
    fields = [b"P", NONCE, str(pid).encode(), b64(status), b64(b"7 (app) S 1 7 7 0"),
              b64(b"/usr/bin/app\0"), b64(bytes(16)), base64.b64encode(MAPS), b64(EXE),
              b64(b"HOME=/\0API_TOKEN=tok-123456\0"), b"7,8"]
    return b" ".join(fields) + b"\n"


def stream(*frames: bytes, head: bytes = b"DDMEM 1 " + NONCE + b" x86_64\n") -> io.BufferedReader:
    return io.BufferedReader(io.BytesIO(head + b"".join(frames)))  # type: ignore[arg-type]


def whole(pid: int = 7) -> list[bytes]:
    n = str(pid).encode()
    return [
        p_line(pid),
        b"R " + NONCE + b" " + n + b" 0 2\n" + b"T" * 8192,
        b"E " + NONCE + b" " + n + b" 0 2 -\n",
        b"S " + NONCE + b" " + n + b" 1 noread\n",
        b"S " + NONCE + b" " + n + b" 2 limit\n",
        b"Q " + NONCE + b" " + n + b"\n",
    ]


def test_a_stream_becomes_a_core_and_a_record(tmp_path: Path) -> None:
    result = memory.receive(stream(*whole(), b"X " + NONCE + b" 9 refused " + b64(b"Permission denied"),
                                   b"\nEND " + NONCE + b"\n"), tmp_path)
    assert [c.name for c in result.cores] == ["memory/7-app.core"]
    core = (tmp_path / "7-app.core").read_bytes()
    assert core[:4] == b"\x7fELF" and b"T" * 8192 in core
    assert (tmp_path / "7-app.core").stat().st_mode & 0o777 == 0o600
    record = result.processes[0]
    assert record["bytes"] == 8192 and record["threads"] == [7, 8]
    assert [s["reason"].split(" ")[0] for s in record["skipped"]] == ["not", "over"]
    assert result.cut == ["pid 7 (app): 1 mapping(s), 4 KiB left out"]
    assert result.refused == ["pid 9: Permission denied"]


def test_unreadable_blocks_are_recorded(tmp_path: Path) -> None:
    frames = whole()
    frames[2] = b"E " + NONCE + b" 7 0 1 " + b64(b"dd: /proc/7/mem: Input/output error") + b"\n"
    result = memory.receive(stream(*frames, b"END " + NONCE + b"\n"), tmp_path)
    record = result.processes[0]
    assert record["unreadable_bytes"] == 4096
    assert "Input/output error" in record["skipped"][0]["reason"]


@pytest.mark.parametrize("damage", [
    "wrong nonce", "cut data", "no end", "bad header", "region too big", "unknown tag",
])
def test_damaged_or_forged_streams_are_caught(tmp_path: Path, damage: str) -> None:
    frames = whole()
    if damage == "wrong nonce":
        # What a target could try: a frame of its own inside its memory. Without the nonce it
        # is just bytes of the region, and a header with another nonce is refused.
        frames[1] = b"R " + NONCE[::-1] + b" 7 0 2\n" + b"T" * 8192
    elif damage == "cut data":
        frames = frames[:1] + [frames[1][:5000]]
    elif damage == "region too big":
        frames[1] = b"R " + NONCE + b" 7 0 3\n" + b"T" * 12288
    elif damage == "unknown tag":
        frames[3] = b"Z " + NONCE + b" 7\n"
    tail = [] if damage in ("no end", "cut data") else [b"END " + NONCE + b"\n"]
    head = b"DDMEM 2 x\n" if damage == "bad header" else b"DDMEM 1 " + NONCE + b" x86_64\n"
    result = memory.receive(stream(*frames, *tail, head=head), tmp_path)
    assert "memory stream" in result.damaged
    if damage == "no end":  # the process itself was complete: its core stays
        assert [c.name for c in result.cores] == ["memory/7-app.core"]
        return
    assert not result.cores and not list(tmp_path.iterdir())  # the core being written is dropped
    if damage != "bad header":
        assert result.processes[0]["skipped_reason"].startswith("incomplete:")


def test_cores_completed_before_damage_are_kept(tmp_path: Path) -> None:
    second = [f.replace(b" 7 ", b" 8 ").replace(b" 7\n", b" 8\n") for f in whole()]
    result = memory.receive(stream(*whole(), *second[:2]), tmp_path)  # cut inside process 8
    assert [c.name for c in result.cores] == ["memory/7-app.core"] and result.damaged
    assert [p["pid"] for p in result.processes] == [7, 8]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["7-app.core"]


def test_region_bytes_that_look_like_frames_stay_bytes(tmp_path: Path) -> None:
    forged = (b"Q " + NONCE + b" 7\nEND " + NONCE + b"\n").ljust(8192, b"\0")
    frames = whole()
    frames[1] = b"R " + NONCE + b" 7 0 2\n" + forged
    result = memory.receive(stream(*frames, b"END " + NONCE + b"\n"), tmp_path)
    assert result.processes[0]["bytes"] == 8192 and len(result.processes[0]["skipped"]) == 2


def test_core_names_are_sanitised() -> None:
    assert memory.core_name(12, "py\nthon/../x") == "memory/12-py_thon_.._x.core"
    assert memory.core_name(3, "..") == "memory/3-process.core"
    assert memory.core_name(4, "\x1b[31m") == "memory/4-__31m.core"


def test_script_embeds_only_numbers_and_the_limit() -> None:
    script = memscript.memory_script([1, 22], 1 << 20)
    assert script.startswith("PIDS='1 22'\nLIMIT=1048576\n")
    assert "$$" not in script  # Kubernetes rewrites it in commands


def test_secret_environment_values_are_masked_across_pieces(tmp_path: Path) -> None:
    frames = whole()
    data = (b"x" * 4090 + b"tok-123456" + b"y" * 4092).ljust(8192, b"z")
    frames[1] = b"R " + NONCE + b" 7 0 2\n" + data
    result = memory.receive(stream(*frames, b"END " + NONCE + b"\n"), tmp_path)
    core = (tmp_path / "7-app.core").read_bytes()
    assert b"tok-123456" not in core and b"x" * 4090 + b"*" * 10 + b"y" * 4092 in core
    assert result.processes[0]["masked_values"] == 1
    (tmp_path / "kept").mkdir()
    memory.receive(stream(*frames, b"END " + NONCE + b"\n"), tmp_path / "kept", mask_secrets=False)
    assert b"tok-123456" in (tmp_path / "kept" / "7-app.core").read_bytes()


def test_masker_finds_a_secret_split_between_pieces() -> None:
    masker = memory.Masker([b"hunter2-secret", b"abc"])  # too short values are not masked
    out = masker.feed(b"..hunter2-") + masker.feed(b"secret..abc") + masker.flush()
    assert out == b".." + b"*" * 14 + b"..abc" and masker.count == 1


def test_command_line_secrets_are_found_as_the_dump_would_redact_them() -> None:
    args = ["mysql", "-phunter2-db", "--password", "second-secret", "https://u:pw-in-url@h/x",
            "--token=tok-abcdef", "--verbose"]
    found = memory.secret_values(b"HOME=/\0DB_PASSWORD=env-secret\0A=1\0", args)
    assert set(found) == {b"hunter2-db", b"second-secret", b"pw-in-url", b"tok-abcdef",
                          b"env-secret"}
