"""`dump`: gather what was in a container and write it as one verifiable bundle.

A running target is read through the sidecar (its root at /proc/<pid>/root, so volumes, bind
mounts and tmpfs are all there) and its processes, sockets and mounts are collected from /proc.
A stopped target or a plain image is read through the engine's archive API, which includes
volumes and bind mounts. The bundle format is in format.py, its writer in writer.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from distrodebug import capture, session, sidecar, terminal
from distrodebug.bundle import memory, memscript, procinfo
from distrodebug.bundle import script as dumpscript
from distrodebug.bundle.options import DumpOptions, SkippedEntry
from distrodebug.bundle.writer import DumpInfo, DumpResult, SideFile, write_bundle
from distrodebug.errors import BundleError, DistrodebugError, Interrupted, UsageError
from distrodebug.model import DebugOptions
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
) -> DumpResult:
    """Write the bundle for ``target`` to ``out`` and return what was written.

    Ctrl-C, SIGTERM and SIGHUP end it at any phase with :class:`Interrupted` (128 + the signal),
    after the partial bundle and the sidecar were removed.
    """
    try:
        with terminal.hangup_signals():
            return _dump(target, out, options, runtime, settings, ui, progress)
    except terminal.Hangup as exc:
        raise Interrupted(f"Received {exc}; no bundle was written and nothing was left behind.",
                          exit_code=128 + exc.signum) from None
    except KeyboardInterrupt:
        raise Interrupted("Interrupted; no bundle was written and nothing was left behind.") from None
    except Interrupted as exc:
        raise Interrupted(f"{exc.message.rstrip('.')}; no bundle was written.",
                          exit_code=exc.exit_code) from None


def _dump(
    target: Target,
    out: Path,
    options: DumpOptions,
    runtime: Runtime,
    settings: Settings,
    ui: session.UI,
    progress: Progress | None,
) -> DumpResult:
    if out.exists() and out.is_dir():
        raise BundleError(f"{out} is a directory.", "Name a file such as incident.tar.zst.")
    info = runtime.inspect(target)
    mode, _ = runtime.privileges(info, DebugOptions())
    described = runtime.dump_meta(info)
    meta: dict[str, Any] = dict(described.members)
    changes = dict(described.changes) if described.changes is not None else None
    identity = dict(described.identity)
    skipped: list[SkippedEntry | tuple[str, str]] = []
    dump_info = DumpInfo(target=identity, meta=meta, changes=changes, skipped=skipped)

    if mode != "join":
        if options.memory:
            raise UsageError(f"--memory reads the memory of running processes, and '{info.name}' "
                             f"is {info.status}.", "Leave --memory out, or start the target first.")
        ui.notice(
            f"distrodebug: '{info.name}' is {info.status}: reading its last filesystem through "
            "the engine's archive API (volumes included; no processes to list)"
        )
        with runtime.read_archive(info, "/") as stream:
            return write_bundle(out, stream, dump_info, options, progress)

    def collect(stream: BinaryIO, _plan: session.Plan) -> bytes:
        return stream.read()

    request = session.SessionRequest(
        target=target, command=_in_sidecar(info.pid, procinfo.COLLECT_SCRIPT), stdin=False,
        outside_target=True, job="read",
    )
    text, _, _, _ = capture.capture(request, runtime, settings, ui, collect)
    found = procinfo.parse_collect(text.decode("utf-8", "replace"))
    meta.update({"processes.json": found.processes, "sockets.json": found.sockets,
                 "mounts.json": found.mounts})

    changed = list(changes) if options.changed_only and changes is not None else []
    script = dumpscript.fs_stream_script(options, changed)
    skips = _SkipCollector(skipped)

    def write(stream: BinaryIO, _plan: session.Plan) -> DumpResult:
        return write_bundle(out, stream, dump_info, options, progress)

    with contextlib.ExitStack() as stack:
        if options.memory:
            spool = stack.enter_context(memory.spool_dir(out))
            dump_info.warnings += _memory(request, info.pid, found.processes, options, runtime,
                                          settings, ui, spool, dump_info)
        request = dataclasses.replace(request, command=_in_sidecar(info.pid, script))
        result, code, _, _ = capture.capture(request, runtime, settings, ui, write, on_stderr=skips)
    if code != 0:
        result.warnings.append(f"the dump script in the sidecar exited with status {code}")
    result.warnings.extend(skips.diagnostics[:20])
    return result


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

    Least privilege first, more only when the kernel refuses. On Docker, when every process runs
    as one non-root uid:gid, the sidecar runs as it with no capability; a process that made
    itself non-dumpable refuses that, and the job runs again as root keeping SYS_PTRACE and
    DAC_READ_SEARCH (privileges.for_job). On Kubernetes the dump's own debugger is tried
    first (its `auto` profile picks the target's uid, or root with the default capabilities);
    on a refusal, a root debugger with SYS_PTRACE (profile general), which Pod Security below
    'privileged' refuses: that refusal is said as it is.
    """
    pids = memory.target_pids(processes)
    script = memscript.memory_script(pids, options.memory_limit)
    request = dataclasses.replace(request, command=_in_sidecar(target_pid, script), job="memory")
    attempts = [request]
    owner = memory.common_owner(processes)
    if owner is not None and request.target.runtime == "docker":
        as_owner = dataclasses.replace(request.options, user=f"{owner[0]}:{owner[1]}")
        attempts.insert(0, dataclasses.replace(request, options=as_owner))
    elif request.target.runtime == "kubernetes":
        # kubectl's `general` profile (SYS_PTRACE) as root: Pod Security is checked before the
        # debugger is sent, and a refusal is an error, not auto's quiet step down.
        more = dataclasses.replace(request.options, user="0", profile="general")
        attempts.append(dataclasses.replace(request, options=more))

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
