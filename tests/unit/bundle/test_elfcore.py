"""The ELF core writer, read back by a small reader here and by binutils' readelf."""

from __future__ import annotations

import io
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from distrodebug.bundle import elfcore
from distrodebug.bundle.elfcore import CoreWriter, Mapping, ProcessInfo

MAPPINGS = [
    Mapping(0x400000, 0x402000, "r-xp", 0, 1234, "/usr/bin/app"),
    Mapping(0x402000, 0x403000, "rw-p", 0x2000, 1234, "/usr/bin/app"),
    Mapping(0x7FFF0000, 0x7FFF2000, "---p", 0, 0, ""),
    Mapping(0x7FFFFFFDE000, 0x7FFFFFFFF000, "rw-p", 0, 0, "[stack]"),
]
PROC = ProcessInfo(pid=7, ppid=1, pgrp=7, sid=7, uid=65532, gid=65532, state="S",
                   comm="app", args="/usr/bin/app --serve", tids=(9, 7, 8))
AUXV = struct.pack("<QQQQQQ", 6, 4096, 25, 0x7FFFFFFFE000, 0, 0)


def _write(path: Path, machine: int = elfcore.EM_X86_64) -> None:
    notes = elfcore.notes(machine, PROC, AUXV, MAPPINGS)
    with open(path, "w+b") as out:
        writer = CoreWriter(out, machine, MAPPINGS, notes)
        writer.write(b"\x7fELF" + bytes(4092))
        writer.write(b"A" * 4096)
        writer.next()
        writer.write(b"data" * 1024)
        writer.next()
        writer.next()  # the guard page: no bytes
        writer.write(b"stack-bytes".ljust(4096, b"\0"))
        writer.next()  # a stack partly dumped: filesz 4096 of memsz 0x21000
        writer.close()


def _parse(data: bytes) -> tuple[tuple[int, ...], list[tuple[int, ...]], list[tuple[bytes, int, bytes]]]:
    header = struct.unpack_from("<16sHHIQQQIHHHHHH", data)
    phdrs = [struct.unpack_from("<IIQQQQQQ", data, header[5] + i * 56) for i in range(header[10])]
    notes = []
    kind, _, offset, _, _, filesz, _, _ = phdrs[0]
    assert kind == elfcore.PT_NOTE
    pos = offset
    while pos < offset + filesz:
        namesz, descsz, ntype = struct.unpack_from("<III", data, pos)
        pos += 12
        name = data[pos : pos + namesz].rstrip(b"\0")
        pos += (namesz + 3) // 4 * 4
        notes.append((name, ntype, data[pos : pos + descsz]))
        pos += (descsz + 3) // 4 * 4
    return header, phdrs, notes


def test_core_layout_reads_back(tmp_path: Path) -> None:
    core = tmp_path / "c.core"
    _write(core)
    data = core.read_bytes()
    header, phdrs, notes = _parse(data)
    assert header[0][:6] == b"\x7fELF\x02\x01" and header[1] == elfcore.ET_CORE
    assert header[2] == elfcore.EM_X86_64 and header[10] == 1 + len(MAPPINGS)
    loads = phdrs[1:]
    assert [p[3] for p in loads] == [m.start for m in MAPPINGS]
    assert [p[6] for p in loads] == [m.size for m in MAPPINGS]  # memsz: the whole mapping
    assert [p[5] for p in loads] == [8192, 4096, 0, 4096]  # filesz: what was dumped
    assert [p[1] for p in loads] == [5, 6, 0, 6]  # R+X, R+W, none, R+W
    for p in loads:
        assert p[2] % 4096 == p[3] % 4096
    assert data[loads[1][2] : loads[1][2] + 4] == b"data"
    assert data[loads[3][2] : loads[3][2] + 11] == b"stack-bytes"

    kinds = [n[1] for n in notes]
    assert kinds == [elfcore.NT_PRPSINFO, 1, 1, 1, elfcore.NT_AUXV, elfcore.NT_FILE]
    tids = [struct.unpack_from("<i", n[2], 32)[0] for n in notes if n[1] == elfcore.NT_PRSTATUS]
    assert tids == [7, 9, 8]  # the main thread first
    assert all(len(n[2]) == 336 for n in notes if n[1] == elfcore.NT_PRSTATUS)
    psinfo = notes[0][2]
    assert len(psinfo) == 136 and psinfo[1:2] == b"S"
    assert struct.unpack_from("<IIiiii", psinfo, 16) == (65532, 65532, 7, 1, 7, 7)
    assert psinfo[40:56].rstrip(b"\0") == b"app" and psinfo[56:].rstrip(b"\0") == b"/usr/bin/app --serve"
    assert notes[4][2] == AUXV
    count, page = struct.unpack_from("<QQ", notes[5][2])
    assert (count, page) == (2, 4096)
    table = [struct.unpack_from("<QQQ", notes[5][2], 16 + 24 * i) for i in range(2)]
    assert table == [(0x400000, 0x402000, 0), (0x402000, 0x403000, 2)]
    assert notes[5][2][16 + 48 :] == b"/usr/bin/app\0/usr/bin/app\0"


def test_writer_refuses_what_would_break_the_layout() -> None:
    out = io.BytesIO()
    writer = CoreWriter(out, elfcore.EM_X86_64, MAPPINGS[:1], b"")
    with pytest.raises(ValueError):
        writer.write(bytes(3 * 4096))  # more than the mapping holds
    writer.write(bytes(100))
    with pytest.raises(ValueError):
        writer.next()  # not whole pages
    with pytest.raises(ValueError):
        CoreWriter(io.BytesIO(), 3, MAPPINGS, b"")  # i386: not supported


@pytest.mark.parametrize("machine,name,prstatus", [(elfcore.EM_X86_64, "X86-64", 0x150),
                                                   (elfcore.EM_AARCH64, "AArch64", 0x188)])
def test_readelf_reads_the_core(tmp_path: Path, machine: int, name: str, prstatus: int) -> None:
    readelf = shutil.which("readelf")
    if readelf is None:
        pytest.fail("readelf is missing: scripts/setup.sh installs binutils")
    core = tmp_path / "c.core"
    _write(core, machine)
    out = subprocess.run([readelf, "-W", "-h", "-l", "-n", str(core)], capture_output=True,
                         text=True, check=True)
    assert "CORE (Core file)" in out.stdout and name in out.stdout
    assert out.stdout.count("NT_PRSTATUS") == 3 and f"0x{prstatus:08x}" in out.stdout
    assert "NT_FILE" in out.stdout and "NT_AUXV" in out.stdout and "NT_PRPSINFO" in out.stdout
    assert out.stdout.count("LOAD") == len(MAPPINGS)
    assert "warning" not in out.stderr.lower() and "error" not in out.stderr.lower()


@pytest.mark.parametrize("machine", [elfcore.EM_X86_64, elfcore.EM_AARCH64])
def test_gdb_opens_the_core_of_either_machine(tmp_path: Path, machine: int) -> None:
    """Real gdb (gdb-multiarch reads an aarch64 core on any host): threads, mappings, bytes."""
    gdb = shutil.which("gdb-multiarch")
    if gdb is None:
        pytest.fail("gdb-multiarch is missing: scripts/setup.sh installs it")
    core = tmp_path / "c.core"
    _write(core, machine)
    out = subprocess.run([gdb, "--batch", "-nx", "-c", str(core), "-ex", "info threads",
                          "-ex", "info proc mappings", "-ex", "x/s 0x402000",
                          "-ex", "x/s 0x7ffffffde000"], capture_output=True, text=True,
                         timeout=60).stdout
    assert "Core was generated by `/usr/bin/app --serve'." in out
    assert re.findall(r"^\*?\s+\d+\s+LWP (\d+)", out, re.M) == ["7", "9", "8"], out
    assert "0x402000           0x403000     0x1000     0x2000 /usr/bin/app" in out
    assert '0x402000:\t"datadata' in out and '0x7ffffffde000:\t"stack-bytes"' in out
