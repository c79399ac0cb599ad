"""`dump`: gather what was in a container and write it as one verifiable bundle.

A running target is read through the sidecar (its root at /proc/<pid>/root, so volumes, bind
mounts and tmpfs are all there) and its processes, sockets and mounts are collected from /proc.
A stopped target or a plain image is read through the engine's archive API, which includes
volumes and bind mounts. The bundle format is in format.py, its writer in writer.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from distrodebug import capture, session, sidecar, terminal
from distrodebug.bundle import procinfo
from distrodebug.bundle import script as dumpscript
from distrodebug.bundle.options import DumpOptions, SkippedEntry
from distrodebug.bundle.writer import DumpInfo, DumpResult, write_bundle
from distrodebug.errors import BundleError, Interrupted
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
    # Volatile first: events expire, logs rotate, and a sidecar's arrival adds events to a pod.
    volatile = runtime.volatile_state(info)
    mode, _ = runtime.privileges(info, DebugOptions())
    described = runtime.dump_meta(info)
    meta: dict[str, Any] = {**described.members, **volatile.members()}
    changes = dict(described.changes) if described.changes is not None else None
    identity = dict(described.identity)
    skipped: list[SkippedEntry | tuple[str, str]] = []
    dump_info = DumpInfo(target=identity, meta=meta, changes=changes, skipped=skipped)

    if mode != "join":
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

    request = dataclasses.replace(request, command=_in_sidecar(info.pid, script))
    result, code, _, _ = capture.capture(request, runtime, settings, ui, write, on_stderr=skips)
    if code != 0:
        result.warnings.append(f"the dump script in the sidecar exited with status {code}")
    result.warnings.extend(skips.diagnostics[:20])
    return result
