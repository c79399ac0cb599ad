"""`dump`: gather what was in a container and write it as one verifiable bundle.

A running target is read through the sidecar (its root at /proc/<pid>/root, so volumes, bind
mounts and tmpfs are all there) and its processes, sockets and mounts are collected from /proc.
A stopped target or a plain image is read through the engine's archive API, which includes
volumes and bind mounts. The bundle format is in format.py, its writer in writer.py.

Order of volatility (RFC 3227): after the one inspect that says what the target is, the running
target's processes (with their live environment), open sockets and mounts are read first, then the
runtime's records (inspect data, logs, events, declared environment, the change list), and the
filesystem last. Each phase's
UTC start and end go into the custody record (custody.py), so the order is evidenced, not claimed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from distrodebug import capture, session, sidecar, terminal
from distrodebug.bundle import custody, memory, memscript, procinfo, signature
from distrodebug.bundle import script as dumpscript
from distrodebug.bundle.options import DumpOptions, SkippedEntry
from distrodebug.bundle.redact import redact_text
from distrodebug.bundle.sshsig import Signer
from distrodebug.bundle.writer import DumpInfo, DumpResult, SideFile, write_bundle
from distrodebug.errors import BundleError, DistrodebugError, ExitCode, Interrupted, UsageError
from distrodebug.model import DebugOptions, TargetInfo
from distrodebug.runtimes.base import Runtime
from distrodebug.settings import Settings
from distrodebug.target import Target

Progress = Callable[[int, int], None]


class _SkipCollector:
    """Turns the dump script's DDSKIP stderr lines into manifest entries as they arrive."""

    def __init__(self, into: list[SkippedEntry | tuple[str, str]]) -> None:
        self._into = into
        self._partial = b""
        self.diagnostics: list[str] = []

    def __call__(self, data: bytes) -> None:
        self._partial += data
        *lines, self._partial = self._partial.split(b"\n")
        text = [line.decode("utf-8", "surrogateescape") for line in lines]
        self._into.extend(dumpscript.parse_skip_lines(text))
        self.diagnostics += [t for t in text if t and not t.startswith(("DDSKIP", "DDINFO"))]


def _in_sidecar(pid: int, script: str) -> tuple[str, ...]:
    return sidecar.with_target_pid(pid, ("sh", "-c", script))


def dump(
    target: Target,
    out: Path,
    options: DumpOptions,
    runtime: Runtime,
    settings: Settings,
    ui: session.UI,
    progress: Progress | None = None,
    *,
    command: tuple[str, ...] = (),
    signer: Signer | None = None,
) -> DumpResult:
    """Write the bundle for ``target`` to ``out`` and return what was written.

    ``command`` (the command line) goes into the custody record, redacted; with ``signer`` the
    manifest digest is signed into ``OUT.sig`` (signature.py). A bundle written to a file gets its
    custody log's first line. Ctrl-C, SIGTERM and SIGHUP end it at any phase with
    :class:`Interrupted` (128 + the signal), after the partial bundle and the sidecar were removed.
    """
    record = custody.Record(custody.command_line(command),
                            signer=signature.signer_record(signer) if signer else None)
    before = _file_identity(out)
    try:
        with terminal.hangup_signals():
            result = _dump(target, out, options, runtime, settings, ui, progress, record)
    except terminal.Hangup as exc:
        raise _interrupted(f"Received {exc}", out, before, 128 + exc.signum,
                           "nothing was left behind") from None
    except KeyboardInterrupt:
        raise _interrupted("Interrupted", out, before, ExitCode.INTERRUPTED,
                           "nothing was left behind") from None
    except Interrupted as exc:
        raise _interrupted(exc.message.rstrip("."), out, before, exc.exit_code, "") from None
    _seal(result, out, signer)
    return result


def _file_identity(out: Path) -> tuple[int, int] | None:
    """The regular file at ``out`` (through a symlink, as the writer goes), or None."""
    if str(out) == "-":
        return None
    try:
        found = os.stat(out)
    except OSError:
        return None
    return (found.st_dev, found.st_ino) if stat.S_ISREG(found.st_mode) else None


def _interrupted(what: str, out: Path, before: tuple[int, int] | None, code: int,
                 rest: str) -> Interrupted:
    """The interrupt, saying truly whether a bundle was written: a signal can come after the
    complete bundle was renamed into place (while the sidecar's command ends)."""
    now = _file_identity(out)
    if now is not None and now != before:
        return Interrupted(
            f"{what} after {out} was written: the bundle is complete, but its custody log was "
            "not started and it was not signed.",
            f"Check the bundle with 'distrodebug verify {out}', or dump again.", exit_code=code)
    return Interrupted(f"{what}; no bundle was written{' and ' + rest if rest else ''}.",
                       exit_code=code)


def _seal(result: DumpResult, out: Path, signer: Signer | None) -> None:
    """Sign the digest beside a bundle written to a file, and start its custody log."""
    if str(out) == "-" or not out.is_file():
        if signer is not None:
            result.warnings.append("the bundle went to a stream, not a file: it was not signed")
        return
    detail: dict[str, object] = {"bundle": out.name}
    stale = signature.sig_path(out)
    if signer is None and os.path.lexists(stale):
        result.warnings.append(f"{stale} belongs to an earlier bundle of that name and does not "
                               "sign this one; remove it, or dump again with --sign")
    if signer is not None:
        try:
            sig = signature.sign_bundle(out, result.digest, signer)
        except BundleError:
            custody.record_safely(out, "collected", "ok", result.digest,
                                  {**detail, "signature": "failed"}, result.warnings.append)
            raise
        result.signature = str(sig)
        detail["signature"] = sig.name
    custody.record_safely(out, "collected", "ok", result.digest, detail, result.warnings.append)


def _dump(
    target: Target,
    out: Path,
    options: DumpOptions,
    runtime: Runtime,
    settings: Settings,
    ui: session.UI,
    progress: Progress | None,
    record: custody.Record,
) -> DumpResult:
    if out.exists() and out.is_dir():
        raise UsageError(f"{out} is a directory.", "Name a file such as incident.tar.zst.")
    with record.phase("identity", "which target: the runtime's inspect"):
        info = runtime.inspect(target)
        mode, _ = runtime.privileges(info, DebugOptions())
    # Volatile first: events expire, logs rotate, and a sidecar's arrival adds events to a pod.
    with record.phase("runtime state", "the runtime's state, events and logs"):
        state = runtime.volatile_state(info)
    volatile: dict[str, Any] = {}
    if mode != "join" and options.memory:
        raise UsageError(f"--memory reads the memory of running processes, and '{info.name}' "
                         f"is {info.status}.", "Leave --memory out, or start the target first.")
    if mode == "join":
        with record.phase("volatile", "processes and their environment, open sockets, mounts (/proc)"):
            volatile = _volatile(target, info, runtime, settings, ui)
    else:
        record.skipped("volatile", "processes, open sockets and mounts", f"the target is {info.status}")
    with record.phase("records", "the runtime's records: inspect data, logs, events, environment"):
        described = runtime.dump_meta(info)
    meta: dict[str, Any] = {**described.members, **state.members(), **volatile}
    changes = dict(described.changes) if described.changes is not None else None
    identity = dict(described.identity)
    record.target = {**custody.target_record(identity), "endpoint": redact_text(runtime.endpoint)[0]}
    skipped: list[SkippedEntry | tuple[str, str]] = []
    dump_info = DumpInfo(target=identity, meta=meta, changes=changes, skipped=skipped,
                         custody=record.finish)
    with contextlib.ExitStack() as stack:
        request = session.SessionRequest(
            target=target, command=(), stdin=False, outside_target=True, job="read",
        )
        if options.memory:
            spool = stack.enter_context(memory.spool_dir(out))
            with record.phase("memory", "process memory (--memory), as ELF cores"):
                dump_info.warnings += _memory(request, info.pid, volatile.get("processes.json", []),
                                              options, runtime, settings, ui, spool, dump_info)
        # The filesystem phase ends when the writer asks for the record (record.finish).
        record.phase_started("filesystem", "the filesystem")
        return _filesystem(request, info, mode, out, options, runtime, settings, ui, progress,
                           dump_info, changes, skipped)


def _filesystem(request: session.SessionRequest, info: TargetInfo, mode: str, out: Path,
                options: DumpOptions, runtime: Runtime, settings: Settings, ui: session.UI,
                progress: Progress | None, dump_info: DumpInfo, changes: dict[str, str] | None,
                skipped: list[SkippedEntry | tuple[str, str]]) -> DumpResult:
    if mode != "join":
        ui.notice(
            f"distrodebug: '{info.name}' is {info.status}: reading its last filesystem through "
            "the engine's archive API (volumes included; no processes to list)"
        )
        with runtime.read_archive(info, "/") as stream:
            return write_bundle(out, stream, dump_info, options, progress)

    changed = list(changes) if options.changed_only and changes is not None else []
    script = dumpscript.fs_stream_script(options, changed)
    skips = _SkipCollector(skipped)

    def write(stream: BinaryIO, _plan: session.Plan) -> DumpResult:
        return write_bundle(out, stream, dump_info, options, progress)

    request = dataclasses.replace(request, command=_in_sidecar(info.pid, script))
    result, code, _, _ = capture.capture(request, runtime, settings, ui, write, on_stderr=skips)
    if code != 0:
        result.warnings.append(f"the dump script in the sidecar exited with status {code}")
    result.warnings.extend(skips.diagnostics[:20])
    return result


def _volatile(target: Target, info: TargetInfo, runtime: Runtime, settings: Settings,
              ui: session.UI) -> dict[str, Any]:
    """The running target's processes, sockets and mounts, read through a sidecar."""

    def collect(stream: BinaryIO, _plan: session.Plan) -> bytes:
        return stream.read()

    request = session.SessionRequest(
        target=target, command=_in_sidecar(info.pid, procinfo.COLLECT_SCRIPT), stdin=False,
        outside_target=True, job="read",
    )
    text, _, _, _ = capture.capture(request, runtime, settings, ui, collect)
    found = procinfo.parse_collect(text.decode("utf-8", "replace"))
    return {"processes.json": found.processes, "sockets.json": found.sockets,
            "mounts.json": found.mounts}


def _memory(
    request: session.SessionRequest,
    target_pid: int,
    processes: list[dict[str, Any]],
    options: DumpOptions,
    runtime: Runtime,
    settings: Settings,
    ui: session.UI,
    spool: Path,
    dump_info: DumpInfo,
) -> list[str]:
    """``--memory``: one sidecar streams every process's memory into cores in ``spool``; they
    become side files of the bundle. Returns the warnings.

    Least privilege first, more only when the kernel refuses: the runtime says what to try, in
    order (Runtime.memory_attempts); a refusal of the last attempt is said as it is.
    """
    pids = memory.target_pids(processes)
    script = memscript.memory_script(pids, options.memory_limit)
    request = dataclasses.replace(request, command=_in_sidecar(target_pid, script), job="memory")
    attempts = [dataclasses.replace(request, options=tried) for tried in
                runtime.memory_attempts(request.options, memory.common_owner(processes))]

    refused = ""
    for number, attempt in enumerate(attempts):
        folder = spool / str(number)
        folder.mkdir(mode=0o700)

        def receive(stream: BinaryIO, _plan: session.Plan, into: Path = folder) -> memory.MemoryResult:
            return memory.receive(stream, into, mask_secrets=not options.include_secrets)

        try:
            found, code, stderr, plan = capture.capture(attempt, runtime, settings, ui, receive)
        except DistrodebugError as exc:
            if number == 0:
                raise
            raise BundleError(
                f"The kernel refused to let the debugger read the target's memory ({refused}), "
                f"and a debugger with SYS_PTRACE could not start: {exc.message}",
                "Pod Security 'baseline' and 'restricted' refuse SYS_PTRACE. Leave --memory out "
                "to dump the rest, or dump the memory in a namespace whose level is 'privileged'.",
                exit_code=exc.exit_code,
            ) from None
        priv = plan.privileges
        used = priv.describe() + (f", dropped {', '.join(priv.cap_drop)}" if priv.cap_drop else "")
        used += f" ({priv.reason})"
        if not found.refused or number == len(attempts) - 1:
            break
        refused = "; ".join(found.refused[:3])
        ui.notice(f"distrodebug: as {priv.describe()}, the kernel refused to let the sidecar read "
                  f"the memory of {refused}; trying again with SYS_PTRACE")
    dump_info.meta["memory.json"] = found.to_json(options.memory_limit, used)
    dump_info.side_files = [SideFile(core.name, core.path) for core in found.cores]
    if found.damaged and not found.cores and not found.refused:
        detail = stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        raise BundleError(f"{found.damaged.rstrip('.')} {detail[0]}".strip(),
                          "Run the dump again, or leave --memory out.")
    if found.refused and not found.cores:
        raise BundleError(
            "The kernel refused to let the sidecar read the target's memory ("
            + "; ".join(found.refused[:3]) + f"). The sidecar ran as {used}.",
            "A security module (Yama, AppArmor, SELinux) or the runtime's policy forbids it. "
            "Leave --memory out to dump the rest.",
        )
    warnings = [f"memory of {item} was refused" for item in found.refused]
    if found.damaged:
        text = f"{found.damaged} The cores completed before are kept (meta/memory.json)."
        ui.notice(f"distrodebug: {text}")
        warnings.append(text)
    if found.cut:
        text = (f"--memory-limit ({options.memory_limit >> 20} MiB) left out: "
                + "; ".join(found.cut) + " (meta/memory.json lists each mapping)")
        ui.notice(f"distrodebug: {text}; raise --memory-limit to keep them")
        warnings.append(text)
    if code != 0:
        tail = stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        warnings.append(f"the memory script in the sidecar exited with status {code} {tail[0]}".strip())
    return warnings
