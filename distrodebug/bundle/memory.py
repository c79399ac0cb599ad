"""``dump --memory``: the target's process memory as ELF core files in the bundle.

The sidecar streams each process's mappings (:mod:`distrodebug.bundle.memscript`); here each
process becomes ``memory/PID-COMM.core`` (:mod:`distrodebug.bundle.elfcore`), written to a private
spool directory as the bytes arrive (memory stays flat whatever the process's size) and then
copied into the bundle by the writer, hashed in the manifest like every member. What was left
out, and why, goes to ``meta/memory.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from distrodebug.bundle import elfcore, procinfo
from distrodebug.bundle.memscript import (
    BLOCK,
    End,
    Frames,
    ProcessEnd,
    ProcessHead,
    Region,
    RegionEnd,
    Skip,
)
from distrodebug.bundle.redact import is_secret_name, redact_data
from distrodebug.errors import BundleError

MEMORY_DIR = "memory/"

_REASONS = {
    "noread": "not readable (no r permission: a guard page or reserved space)",
    "kernel": "the kernel's own mapping ([vvar], [vsyscall]), not the process's memory",
    "device": "a device mapping: reading it could act on hardware",
    "limit": "over --memory-limit",
    "gone": "the process ended before its memory was read",
    "refused": "the kernel refused access to its memory (ptrace access check)",
    "ours": "distrodebug's own process",
    "other-container": "not in the target container (another container's or a debugger's)",
}


@dataclass
class CoreFile:
    """One core written to the spool directory, to be copied into the bundle."""

    name: str  # memory/PID-COMM.core
    path: Path


@dataclass
class MemoryResult:
    """What ``--memory`` produced: core files, and the record that goes to meta/memory.json."""

    cores: list[CoreFile] = field(default_factory=list)
    processes: list[dict[str, Any]] = field(default_factory=list)
    cut: list[str] = field(default_factory=list)  # "pid 7 (python3): 3 mappings, 96 MiB"
    refused: list[str] = field(default_factory=list)
    #: Why the stream ended early, when it did (the cores completed before are kept).
    damaged: str = ""

    def to_json(self, limit: int, privileges: str) -> dict[str, Any]:
        return {
            "limit": limit,
            "privileges": privileges,
            "bytes": sum(p.get("bytes", 0) for p in self.processes),
            "complete": not self.damaged,
            "processes": self.processes,
        }


def core_name(pid: int, comm: str) -> str:
    """``memory/PID-COMM.core`` with the command name reduced to ``[A-Za-z0-9._-]``."""
    clean = re.sub(r"[^A-Za-z0-9._-]", "_", comm)[:32].strip(".") or "process"
    return f"{MEMORY_DIR}{pid}-{clean}.core"


def parse_maps(text: bytes) -> list[elfcore.Mapping]:
    """/proc/PID/maps lines as mappings (names stay as the kernel escaped them)."""
    out: list[elfcore.Mapping] = []
    for line in text.decode("utf-8", "surrogateescape").split("\n"):
        cols = line.split(None, 5)
        if len(cols) < 5 or "-" not in cols[0]:
            continue
        start, _, end = cols[0].partition("-")
        out.append(elfcore.Mapping(int(start, 16), int(end, 16), cols[1], int(cols[2], 16),
                                   int(cols[4]), cols[5] if len(cols) > 5 else ""))
    return out


def _stat_ids(stat: bytes) -> tuple[int, int, int]:
    """ppid, pgrp and session from /proc/PID/stat (after the last ')': the name may hold any)."""
    tail = stat.rsplit(b")", 1)[-1].split()
    try:
        return int(tail[1]), int(tail[2]), int(tail[3])
    except (IndexError, ValueError):
        return 0, 0, 0


def machine_of(exe_head: bytes) -> int | None:
    """e_machine of a 64-bit little-endian ELF header; None for anything else."""
    if len(exe_head) < 20 or exe_head[:4] != b"\x7fELF" or exe_head[4] != 2 or exe_head[5] != 1:
        return None
    return int.from_bytes(exe_head[18:20], "little")


def _process_info(head: ProcessHead) -> elfcore.ProcessInfo:
    status = procinfo.parse_status(head.status.decode("utf-8", "surrogateescape"))
    ppid, pgrp, sid = _stat_ids(head.stat)
    args = " ".join(procinfo.parse_cmdline(head.cmdline))
    return elfcore.ProcessInfo(
        pid=head.pid, ppid=ppid, pgrp=pgrp, sid=sid, uid=status["uid"] or 0,
        gid=status["gid"] or 0, state=(status["state"] or "R")[:1], comm=status["name"],
        args=args, tids=head.tids,
    )  # fmt: skip


def _region_record(mapping: elfcore.Mapping, reason: str) -> dict[str, Any]:
    return {"start": f"{mapping.start:#x}", "end": f"{mapping.end:#x}", "perms": mapping.perms,
            "path": mapping.path, "reason": reason}


#: Shorter values are not masked: a 1-3 byte string occurs everywhere in memory.
MIN_MASKED = 4


def secret_values(environ: bytes, args: Sequence[str] = ()) -> list[bytes]:
    """The values the dump would redact: of the environment's secret-looking variables
    (redact.is_secret_name) and in the command line (``--password=X``, ``-pX``, a URL's)."""
    out: set[bytes] = set()
    for entry in environ.split(b"\0"):
        name, sep, value = entry.partition(b"=")
        if sep and len(value) >= MIN_MASKED and is_secret_name(name.decode("utf-8", "replace")):
            out.add(value)
    redacted, _ = redact_data(list(args))
    if isinstance(redacted, list) and len(redacted) == len(args):
        for arg, shown in zip(args, redacted, strict=True):
            if arg != shown:
                head = len(os.path.commonprefix([arg, shown]))
                tail = len(os.path.commonprefix([arg[head:][::-1], shown[head:][::-1]]))
                value = arg[head : len(arg) - tail].encode("utf-8", "surrogateescape")
                if len(value) >= MIN_MASKED:
                    out.add(value)
    return sorted(out, key=len, reverse=True)


class Masker:
    """Replaces each secret value by as many ``*`` wherever it occurs in a region's bytes,
    including across the pieces they arrive in (the last ``longest - 1`` bytes are held back)."""

    def __init__(self, secrets: Sequence[bytes]) -> None:
        self.secrets = [s for s in secrets if len(s) >= MIN_MASKED]
        self.keep = max((len(s) for s in self.secrets), default=1) - 1
        self.held = b""
        self.count = 0

    def feed(self, data: bytes) -> bytes:
        if not self.secrets:
            return data
        buf = self.held + data
        for secret in self.secrets:
            found = buf.count(secret)
            if found:
                buf = buf.replace(secret, b"*" * len(secret))
                self.count += found
        cut = max(len(buf) - self.keep, 0)
        self.held = buf[cut:]
        return buf[:cut]

    def flush(self) -> bytes:
        held, self.held = self.held, b""
        return held


class _Process:
    """One core being written."""

    def __init__(self, head: ProcessHead, spool: Path, node_machine: str, mask: bool) -> None:
        args = procinfo.parse_cmdline(head.cmdline)
        self.masker = Masker(secret_values(head.environ, args) if mask else [])
        self.info = _process_info(head)
        if mask:  # NT_PRPSINFO's arguments as the dump shows them
            shown, _ = redact_data(args)
            self.info = dataclasses.replace(self.info, args=" ".join(shown))
        self.mappings = parse_maps(head.maps)[: elfcore.MAX_SEGMENTS]
        self.record: dict[str, Any] = {
            "pid": head.pid, "name": self.info.comm, "cmdline": procinfo.parse_cmdline(head.cmdline),
            "threads": list(head.tids), "mappings": len(self.mappings), "bytes": 0,
            "unreadable_bytes": 0, "masked_values": 0, "skipped": [],
        }  # fmt: skip
        self.machine = machine_of(head.exe_head)
        if not head.exe_head:  # the executable could not be read: the node's machine then
            self.machine = {name: em for em, name in elfcore.MACHINES.items()}.get(node_machine)
        self.writer: elfcore.CoreWriter | None = None
        self.file: BinaryIO | None = None
        self.name = core_name(head.pid, self.info.comm)
        self.path = spool / self.name.removeprefix(MEMORY_DIR)
        if self.machine in elfcore.MACHINES:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            self.file = os.fdopen(fd, "w+b")
            note_data = elfcore.notes(self.machine, self.info, head.auxv, self.mappings)
            self.writer = elfcore.CoreWriter(self.file, self.machine, self.mappings, note_data)
            self.record["file"] = self.name
            self.record["machine"] = elfcore.MACHINES[self.machine]

    def mapping(self, index: int) -> elfcore.Mapping:
        if not 0 <= index < len(self.mappings):
            raise BundleError("The memory stream names a mapping the process does not have.",
                              "Run the dump again; report it if it happens twice.")
        return self.mappings[index]

    def advance_to(self, index: int) -> None:
        """Mappings before ``index`` get no bytes in the core."""
        if self.writer is not None:
            while self.writer.index < index:
                self.writer.next()

    def write(self, data: bytes) -> None:
        if self.writer is not None:
            self.writer.write(self.masker.feed(data))

    def end_region(self) -> None:
        if self.writer is not None:
            self.writer.write(self.masker.flush())
            self.writer.next()

    def close(self) -> int:
        size = 0
        if self.writer is not None and self.file is not None:
            size = self.writer.close()
            self.file.close()
        self.record["core_size"] = size
        self.record["masked_values"] = self.masker.count
        return size


def receive(stream: BinaryIO, spool: Path, mask_secrets: bool = True) -> MemoryResult:
    """Read the memory script's stdout and write one core per process into ``spool``.

    With ``mask_secrets`` (unless --include-secrets), the values of the process's secret-looking
    environment variables are masked wherever they occur in its memory. Memory holds secrets
    no name points at (keys read from files, tokens from the network): a core is as sensitive
    as the process itself."""
    result = MemoryResult()
    frames = Frames(stream)
    current: _Process | None = None
    cut: dict[int, list[int]] = {}
    try:
        for frame in frames.frames():
            if isinstance(frame, ProcessHead):
                if current is not None:
                    raise BundleError("The memory stream started a process inside another.")
                current = _Process(frame, spool, frames.machine, mask_secrets)
                if current.writer is None:
                    current.record["skipped_reason"] = "not a 64-bit x86_64 or aarch64 process"
            elif isinstance(frame, Region):
                proc = _expect(current, frame.pid)
                mapping = proc.mapping(frame.index)
                if frame.blocks * BLOCK != mapping.size:
                    raise BundleError("The memory stream's region size differs from its mapping.")
                proc.advance_to(frame.index)
                frames.read_all(proc.write)
                proc.end_region()
                if proc.writer is not None:
                    proc.record["bytes"] += mapping.size
            elif isinstance(frame, RegionEnd):
                proc = _expect(current, frame.pid)
                mapping = proc.mapping(frame.index)
                missing = mapping.size - frame.whole * BLOCK
                if missing > 0:
                    proc.record["unreadable_bytes"] += missing
                    proc.record["skipped"].append(_region_record(
                        mapping, f"{missing} of {mapping.size} bytes could not be read and are "
                        f"zeros in the core ({frame.error or 'no error message'})"))
            elif isinstance(frame, Skip) and frame.index is not None:
                proc = _expect(current, frame.pid)
                mapping = proc.mapping(frame.index)
                why = _REASONS.get(frame.reason, frame.reason)
                proc.record["skipped"].append(_region_record(mapping, why))
                if frame.reason == "limit":
                    cut.setdefault(frame.pid, []).append(mapping.size)
            elif isinstance(frame, Skip):
                text = _REASONS.get(frame.reason, frame.reason)
                if frame.reason != "ours":
                    result.processes.append({"pid": frame.pid, "skipped_reason": text,
                                             "message": frame.message})
                if frame.reason == "refused":
                    result.refused.append(f"pid {frame.pid}: {frame.message or text}")
            elif isinstance(frame, ProcessEnd):
                proc = _expect(current, frame.pid)
                proc.close()
                if proc.writer is not None:
                    result.cores.append(CoreFile(proc.name, proc.path))
                result.processes.append(proc.record)
                if frame.pid in cut:
                    sizes = cut[frame.pid]
                    result.cut.append(f"pid {frame.pid} ({_shown(proc.info.comm)}): {len(sizes)} "
                                      f"mapping(s), {_mib(sum(sizes))} left out")
                current = None
            elif isinstance(frame, End):
                break
    except BundleError as exc:
        # The sidecar or the transport went away (frames cannot be forged: see memscript).
        # What was complete stays; the process being read is dropped and recorded as such.
        result.damaged = exc.message
        if current is not None:
            current.record["skipped_reason"] = f"incomplete: {exc.message}"
            result.processes.append(current.record)
    finally:
        if current is not None and current.file is not None:
            current.file.close()
            if result.damaged:
                current.path.unlink(missing_ok=True)
    return result


def _shown(name: str) -> str:
    """A process name for a message: the target chose it, so no control character passes."""
    return "".join(c if c.isprintable() else f"\\x{ord(c) & 0xFF:02x}" for c in name)


def _mib(size: int) -> str:
    return f"{size >> 10} KiB" if size < 1 << 20 else f"{size / (1 << 20):.1f} MiB"


def _expect(current: _Process | None, pid: int) -> _Process:
    if current is None or current.record["pid"] != pid:
        raise BundleError("The memory stream mixed up its processes.",
                          "Run the dump again; report it if it happens twice.")
    return current


def target_pids(processes: Sequence[dict[str, Any]]) -> list[int]:
    """The processes whose memory is read: those the dump listed (our own are already out)."""
    return [int(p["pid"]) for p in processes if isinstance(p.get("pid"), int)]


def common_owner(processes: Sequence[dict[str, Any]]) -> tuple[int, int] | None:
    """The one non-root (uid, gid) every process runs as (real and effective), else None."""
    ids = {(p.get("uid"), p.get("euid"), p.get("gid")) for p in processes}
    if len(ids) != 1:
        return None
    uid, euid, gid = ids.pop()
    if not isinstance(uid, int) or not isinstance(gid, int) or uid != euid or uid == 0:
        return None
    return uid, gid


@contextlib.contextmanager
def spool_dir(near: Path) -> Iterator[Path]:
    """A private (0700) directory for the cores beside the bundle (not /tmp, often RAM);
    removed with everything in it at the end."""
    parent = near.parent if str(near) != "-" else Path(tempfile.gettempdir())
    try:
        path = Path(tempfile.mkdtemp(prefix=f".{near.name}.memory-", dir=parent))
    except OSError:
        path = Path(tempfile.mkdtemp(prefix=".distrodebug-memory-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
