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

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from distrodebug import capture, session, sidecar, terminal
from distrodebug.bundle import custody, procinfo, signature
from distrodebug.bundle import script as dumpscript
from distrodebug.bundle.options import DumpOptions, SkippedEntry
from distrodebug.bundle.redact import redact_text
from distrodebug.bundle.sshsig import Signer
from distrodebug.bundle.writer import DumpInfo, DumpResult, write_bundle
from distrodebug.errors import BundleError, Interrupted
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
    try:
        with terminal.hangup_signals():
            result = _dump(target, out, options, runtime, settings, ui, progress, record)
    except terminal.Hangup as exc:
        raise Interrupted(f"Received {exc}; no bundle was written and nothing was left behind.",
                          exit_code=128 + exc.signum) from None
    except KeyboardInterrupt:
        raise Interrupted("Interrupted; no bundle was written and nothing was left behind.") from None
    except Interrupted as exc:
        raise Interrupted(f"{exc.message.rstrip('.')}; no bundle was written.",
                          exit_code=exc.exit_code) from None
    _seal(result, out, signer)
    return result


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
        raise BundleError(f"{out} is a directory.", "Name a file such as incident.tar.zst.")
    with record.phase("identity", "which target: the runtime's inspect"):
        info = runtime.inspect(target)
        mode, _ = runtime.privileges(info, DebugOptions())
    volatile: dict[str, Any] = {}
    if mode == "join":
        with record.phase("volatile", "processes and their environment, open sockets, mounts (/proc)"):
            volatile = _volatile(target, info, runtime, settings, ui)
    else:
        record.skipped("volatile", "processes, open sockets and mounts", f"the target is {info.status}")
    with record.phase("records", "the runtime's records: inspect data, logs, events, environment"):
        described = runtime.dump_meta(info)
    meta: dict[str, Any] = {**described.members, **volatile}
    changes = dict(described.changes) if described.changes is not None else None
    identity = dict(described.identity)
    record.target = {**custody.target_record(identity), "endpoint": redact_text(runtime.endpoint)[0]}
    skipped: list[SkippedEntry | tuple[str, str]] = []
    dump_info = DumpInfo(target=identity, meta=meta, changes=changes, skipped=skipped,
                         custody=record.finish)
    # The filesystem phase ends when the writer asks for the record (record.finish).
    record.phase_started("filesystem", "the filesystem")

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

    request = session.SessionRequest(
        target=target, command=_in_sidecar(info.pid, script), stdin=False, outside_target=True,
        job="read",
    )
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
