"""An ELF64 core file writer, pure Python, streaming: written as gdb and readelf expect a Linux core.

Layout (core(5), the System V ABI and Linux's fs/binfmt_elf.c)::

    ELF header (64 bytes, e_type ET_CORE)
    program headers: one PT_NOTE, then one PT_LOAD per mapping in address order
    the PT_NOTE segment: NT_PRPSINFO, one NT_PRSTATUS per thread (the first is the main
        thread), NT_AUXV, NT_FILE
    each PT_LOAD's bytes, page aligned (p_offset % 4096 == p_vaddr % 4096)

Like the kernel, every mapping gets a PT_LOAD; one whose bytes were not dumped (unreadable,
over the size limit) has ``p_filesz`` 0 and ``p_memsz`` its size, so a debugger still knows it
exists and reads file-backed ones from the mapped file (NT_FILE names it).

Registers are not known (the target is never stopped or traced), so each NT_PRSTATUS carries only
the thread's id and the process's ids, with zero registers: gdb lists the threads but shows no
backtrace. Memory stays flat: the caller writes each mapping's bytes as they arrive, into a
seekable file whose header area is reserved first and filled in by :meth:`CoreWriter.close`.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

EM_X86_64 = 62
EM_AARCH64 = 183
ET_CORE = 4
PT_LOAD = 1
PT_NOTE = 4
PF_X, PF_W, PF_R = 1, 2, 4
NT_PRSTATUS = 1
NT_PRPSINFO = 3
NT_AUXV = 6
NT_FILE = 0x46494C45
PAGE = 4096
#: ELF's 16-bit e_phnum: past this a core needs PN_XNUM and a section header; we stop below.
MAX_SEGMENTS = 0xFFFE

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_PHDR = struct.Struct("<IIQQQQQQ")
#: sizeof(struct elf_prstatus) and the offset of pr_reg's end per machine: the header part
#: (siginfo, cursig, sigpend, sighold, pid, ppid, pgrp, sid, four timevals) is 112 bytes on both.
_PRSTATUS_SIZE = {EM_X86_64: 336, EM_AARCH64: 392}
_PRSTATUS_HEAD = struct.Struct("<iiihxxQQiiii")
_PRPSINFO = struct.Struct("<bcbbxxxxQIIiiii16s80s")  # 136 bytes on x86_64 and aarch64

MACHINES = {EM_X86_64: "x86_64", EM_AARCH64: "aarch64"}


@dataclass(frozen=True)
class Mapping:
    """One line of /proc/PID/maps."""

    start: int
    end: int
    perms: str  # "r-xp"
    offset: int
    inode: int
    path: str

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def flags(self) -> int:
        return ((PF_R if "r" in self.perms else 0) | (PF_W if "w" in self.perms else 0)
                | (PF_X if "x" in self.perms else 0))

    @property
    def file_backed(self) -> bool:
        return self.inode != 0 and self.path.startswith("/")


@dataclass(frozen=True)
class ProcessInfo:
    """What the notes say about the process (from /proc/PID/status, stat and cmdline)."""

    pid: int
    ppid: int = 0
    pgrp: int = 0
    sid: int = 0
    uid: int = 0
    gid: int = 0
    state: str = "R"
    comm: str = ""
    args: str = ""
    tids: tuple[int, ...] = ()


def _pad4(data: bytes) -> bytes:
    return data + bytes(-len(data) % 4)


def note(name: bytes, kind: int, desc: bytes) -> bytes:
    """One ELF note: namesz, descsz, type, then name and desc each padded to 4 bytes."""
    name0 = name + b"\0"
    return struct.pack("<III", len(name0), len(desc), kind) + _pad4(name0) + _pad4(desc)


def prstatus(machine: int, tid: int, proc: ProcessInfo) -> bytes:
    """struct elf_prstatus for one thread, registers zero."""
    head = _PRSTATUS_HEAD.pack(0, 0, 0, 0, 0, 0, tid, proc.ppid, proc.pgrp, proc.sid)
    return head + bytes(_PRSTATUS_SIZE[machine] - len(head))


def prpsinfo(proc: ProcessInfo) -> bytes:
    """struct elf_prpsinfo: state, ids, command name (15 bytes) and arguments (79 bytes)."""
    letter = (proc.state or "R")[:1]
    numeric = "RSDTZW".find(letter)
    sname = letter.encode() if numeric >= 0 else b"."
    return _PRPSINFO.pack(
        max(numeric, 0), sname, 1 if letter == "Z" else 0, 0, 0, proc.uid & 0xFFFFFFFF,
        proc.gid & 0xFFFFFFFF, proc.pid, proc.ppid, proc.pgrp, proc.sid,
        proc.comm.encode("utf-8", "surrogateescape")[:15],
        proc.args.encode("utf-8", "surrogateescape")[:79],
    )  # fmt: skip


def file_note(mappings: Sequence[Mapping], page_size: int = PAGE) -> bytes:
    """NT_FILE: count, page size, (start, end, file offset in pages) each, then the names."""
    files = [m for m in mappings if m.file_backed]
    head = struct.pack("<QQ", len(files), page_size)
    table = b"".join(struct.pack("<QQQ", m.start, m.end, m.offset // page_size) for m in files)
    names = b"".join(m.path.encode("utf-8", "surrogateescape") + b"\0" for m in files)
    return head + table + names


def auxv_page_size(auxv: bytes) -> int:
    """AT_PAGESZ from a raw auxv (pairs of 64-bit words), else 4096."""
    for i in range(0, len(auxv) - 15, 16):
        key, value = struct.unpack_from("<QQ", auxv, i)
        if key == 6 and value:
            return int(value)
        if key == 0:
            break
    return PAGE


def notes(machine: int, proc: ProcessInfo, auxv: bytes, mappings: Sequence[Mapping]) -> bytes:
    """The PT_NOTE segment's content, in the order the kernel writes it."""
    tids = list(proc.tids) or [proc.pid]
    if proc.pid in tids:  # the main thread first: gdb takes the first NT_PRSTATUS as the process
        tids.remove(proc.pid)
        tids.insert(0, proc.pid)
    parts = [note(b"CORE", NT_PRPSINFO, prpsinfo(proc))]
    parts += [note(b"CORE", NT_PRSTATUS, prstatus(machine, tid, proc)) for tid in tids]
    parts.append(note(b"CORE", NT_AUXV, auxv))
    parts.append(note(b"CORE", NT_FILE, file_note(mappings, auxv_page_size(auxv))))
    return b"".join(parts)


class CoreWriter:
    """Writes one core into ``out`` (seekable, empty): header area first, then mappings in order.

    For each mapping, in the order given: :meth:`write` its dumped bytes (whole pages, possibly
    none) and then :meth:`next`; :meth:`close` writes the header, the program headers and the
    notes into the reserved area at the start.
    """

    def __init__(self, out: BinaryIO, machine: int, mappings: Sequence[Mapping], note_data: bytes) -> None:
        if machine not in _PRSTATUS_SIZE:
            raise ValueError(f"unsupported machine {machine}")
        if len(mappings) > MAX_SEGMENTS:
            raise ValueError("too many mappings for one ELF core")
        self._out = out
        self._machine = machine
        self._mappings = list(mappings)
        self._notes = note_data
        self._note_offset = _EHDR.size + _PHDR.size * (1 + len(self._mappings))
        data = self._note_offset + len(note_data)
        self.offset = data + (-data % PAGE)
        self._filesz: list[int] = []
        self._offsets: list[int] = []
        self._current = 0
        out.seek(self.offset)
        out.truncate()

    @property
    def index(self) -> int:
        """The mapping whose bytes are being written."""
        return len(self._filesz)

    def write(self, data: bytes | memoryview) -> None:
        if self.index >= len(self._mappings):
            raise ValueError("more mappings than announced")
        if self._current + len(data) > self._mappings[self.index].size:
            raise ValueError("more bytes than the mapping holds")
        self._out.write(data)
        self._current += len(data)

    def next(self) -> None:
        """The current mapping is complete (whatever was written of it)."""
        if self._current % PAGE:
            raise ValueError("a mapping's dumped bytes must be whole pages")
        self._offsets.append(self.offset)
        self._filesz.append(self._current)
        self.offset += self._current
        self._current = 0

    def close(self) -> int:
        """Write the header area; mappings never reached get no bytes. Returns the core's size."""
        while self.index < len(self._mappings):
            self.next()
        out = self._out
        out.seek(0)
        ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # 64-bit, little endian, SysV
        out.write(_EHDR.pack(ident, ET_CORE, self._machine, 1, 0, _EHDR.size, 0, 0, _EHDR.size,
                             _PHDR.size, 1 + len(self._mappings), 0, 0, 0))
        out.write(_PHDR.pack(PT_NOTE, 0, self._note_offset, 0, 0, len(self._notes), 0, 4))
        for mapping, offset, size in zip(self._mappings, self._offsets, self._filesz, strict=True):
            out.write(_PHDR.pack(PT_LOAD, mapping.flags, offset, mapping.start, 0, size,
                                 mapping.size, PAGE))
        out.write(self._notes)
        out.seek(0, 2)
        return self.offset
