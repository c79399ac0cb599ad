"""`dump`: gather what was in a container and write it as one verifiable bundle.

A running target is read through the sidecar (its root at /proc/<pid>/root, so volumes, bind
mounts and tmpfs are all there) and its processes, sockets and mounts are collected from /proc.
A stopped target or a plain image is read through the engine's archive API, which includes
volumes and bind mounts. The bundle format and writer live in dump.py and bundle.py.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from distrodebug import capture, session, sidecar
from distrodebug import privileges as profiles
from distrodebug.bundle import procinfo
from distrodebug.bundle import script as dumpscript
from distrodebug.bundle.options import DumpOptions, SkippedEntry
from distrodebug.bundle.writer import DumpInfo, DumpResult, write_bundle
from distrodebug.errors import BundleError
from distrodebug.model import TargetInfo
from distrodebug.settings import Settings
from distrodebug.target import Target

Progress = Callable[[int, int], None]


def _identity(info: TargetInfo) -> dict[str, Any]:
    raw = info.raw
    return {
        "runtime": "docker",
        "container_id": None if info.status == "image" else info.id,
        "container_name": None if info.status == "image" else info.name,
        "status": info.status,
        "image": info.image,
        "image_id": info.image_id,
        "repo_digests": list(info.repo_digests),
        "entrypoint": list(info.entrypoint),
        "cmd": list(info.cmd),
        "user": info.user,
        "labels": dict(info.labels),
        "created": raw.get("Created"),
    }


def _changes(runtime: Any, info: TargetInfo) -> dict[str, str] | None:
    if info.status == "image":
        return None
    kinds = {"A": "added", "C": "changed", "D": "deleted"}
    result: dict[str, str] = {}
    for line in runtime.changes(info.id):
        kind, _, path = line.partition(" ")
        result[path.lstrip("/")] = kinds.get(kind, "changed")
    return result


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
    return ("env", f"DD_PID={pid}", "sh", "-c", script)


def dump(
    target: Target,
    out: Path,
    options: DumpOptions,
    runtime: Any,
    settings: Settings,
    ui: session.UI,
    progress: Progress | None = None,
) -> DumpResult:
    """Write the bundle for ``target`` to ``out`` and return what was written."""
    if out.exists() and out.is_dir():
        raise BundleError(f"{out} is a directory.", "Name a file such as incident.tar.zst.")
    info = runtime.inspect(target)
    if info.namespace:  # Kubernetes: through an exec into the pod's debugger, running pods only
        mode, _ = runtime.privileges(info, user=None, cap_add=(), privileged=False)
        meta, changes = runtime.dump_meta(info)
        identity = {**_identity(info), "runtime": "kubernetes", "namespace": info.namespace,
                    "pod": info.name, "container": info.container, "container_id": None,
                    "container_name": info.container}
    else:
        mode = profiles.choose_mode(info)
        changes = _changes(runtime, info)
        meta = {"inspect.json": dict(info.raw)}
        if info.status != "image":
            meta["logs.txt"] = runtime.logs(info.id)
        meta["environment.json"] = list((info.raw.get("Config") or {}).get("Env") or [])
        identity = _identity(info)
    skipped: list[SkippedEntry | tuple[str, str]] = []
    dump_info = DumpInfo(target=identity, meta=meta, changes=changes, skipped=skipped)

    if mode != "join":
        ui.notice(
            f"distrodebug: '{info.name}' is {info.status}: reading its last filesystem through "
            "the engine's archive API (volumes included; no processes to list)"
        )
        labels = sidecar.session_labels(
            session_id=session.new_session_id(), target=info.name, created="",
            owner=session.owner_label(), role="dump",
        )
        with runtime.archive(info, labels) as stream:
            reader = io.BufferedReader(stream, buffer_size=1 << 20)
            return write_bundle(out, reader, dump_info, options, progress)

    def collect(stream: BinaryIO, _plan: session.Plan) -> bytes:
        return stream.read()

    request = session.SessionRequest(
        target=target, command=_in_sidecar(info.pid, procinfo.COLLECT_SCRIPT), stdin=False,
        outside_target=True,
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
