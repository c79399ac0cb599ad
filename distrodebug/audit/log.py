"""The audit log: one JSON object per line, each chained to the one before by sha256.

Every entry carries ``seq`` (its line number), ``prev`` (the sha256 of the previous line's exact
bytes, :data:`GENESIS` for the first) and ``hash`` (the sha256 of the entry's canonical JSON
without ``hash``: sorted keys, no spaces). An entry edited in place fails its own hash; one
deleted, inserted or moved breaks the next entry's ``prev`` and the ``seq`` count. The last
line cannot be checked by a successor, so ``audit.head`` beside the log holds the last ``seq``
and ``hash``: cutting entries off the end is caught there. Appends hold an exclusive
``flock`` on the log while they read the last line and write theirs, so two sessions ending at
once cannot both chain to the same predecessor.

What this proves: the log is as it was written, or the first place it is not. Whoever can write
the user's files can also rewrite the whole chain; anchor it elsewhere (the cluster's Events,
a copy of ``audit.head``) when that matters.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distrodebug.audit import recording, state
from distrodebug.errors import DistrodebugError, UsageError

LOG = "audit.log"
HEAD = "audit.head"
GENESIS = "0" * 64


class AuditError(DistrodebugError):
    """The audit log cannot be written or read."""


def canonical(entry: dict[str, Any]) -> bytes:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _entry_hash(entry: dict[str, Any]) -> str:
    return hashlib.sha256(canonical({k: v for k, v in entry.items() if k != "hash"})).hexdigest()


def log_path() -> Path:
    return state.state_dir() / LOG


def _last_line(fd: int) -> bytes:
    """The file's last line, newline included (b"" for an empty file), read from the end."""
    end = os.lseek(fd, 0, os.SEEK_END)
    tail, pos = b"", end
    while pos > 0:
        step = min(pos, 1 << 16)
        pos -= step
        tail = os.pread(fd, step, pos) + tail
        cut = tail.rfind(b"\n", 0, len(tail) - 1)
        if cut >= 0:
            return tail[cut + 1:]
    return tail


def append(entry: dict[str, Any]) -> dict[str, Any]:
    """Add ``entry`` to the log, chained to the last one; returns it with seq, prev and hash."""
    where = state.state_dir()
    try:
        with state.directory() as dir_fd:
            fd = state.open_private(dir_fd, LOG, os.O_RDWR | os.O_CREAT | os.O_APPEND, where)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                last = _last_line(fd)
                if last and not last.endswith(b"\n"):
                    raise AuditError(f"The audit log {where / LOG} ends in an unfinished line.",
                                     "Run 'distrodebug audit verify' and keep the file as "
                                     "evidence; move it aside to start a new log.")
                seq = 1
                if last:
                    try:
                        seq = int(json.loads(last)["seq"]) + 1
                    except (ValueError, KeyError, TypeError):
                        raise AuditError(f"The last line of the audit log {where / LOG} is not "
                                         "an entry of ours.", "Run 'distrodebug audit verify'; "
                                         "move the log aside to start a new one.") from None
                chained = {**entry, "seq": seq,
                           "prev": hashlib.sha256(last).hexdigest() if last else GENESIS}
                chained["hash"] = _entry_hash(chained)
                line = canonical(chained) + b"\n"
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
                _write_head(dir_fd, where, seq, chained["hash"])
            finally:
                os.close(fd)  # releases the lock
    except OSError as exc:
        raise AuditError(f"The audit log {where / LOG} cannot be written: {exc.strerror}.",
                         "Free some space or fix the state directory's permissions; "
                         "DISTRODEBUG_STATE_DIR points it elsewhere.") from None
    return chained


def ready(recordings: bool = False) -> None:
    """Make sure the log (and the recordings' folder) can be written before anything starts:
    a command that ran must not go unrecorded, nor lose its own exit status to our failure."""
    where = state.state_dir()
    try:
        with state.directory() as dir_fd:
            os.close(state.open_private(dir_fd, LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                                        where))
        if recordings:
            with state.directory(recording.RECORDINGS):
                pass
    except OSError as exc:
        raise AuditError(f"The audit log {where / LOG} cannot be written: {exc.strerror}; "
                         "nothing was started.", "Fix the state directory's permissions or "
                         "point DISTRODEBUG_STATE_DIR at a writable directory.") from None


def _write_head(dir_fd: int, where: Path, seq: int, digest: str) -> None:
    """Replace audit.head atomically (a new file renamed over it, under the log's lock)."""
    tmp = f"{HEAD}.{os.getpid()}"
    try:
        os.unlink(tmp, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    fd = state.open_private(dir_fd, tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, where)
    try:
        os.write(fd, canonical({"seq": seq, "hash": digest}) + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, HEAD, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def _read_bytes(name: str) -> bytes | None:
    """A file of the state directory, or None when there is none."""
    try:
        with state.directory(create=False) as dir_fd:
            fd = state.open_private(dir_fd, name, os.O_RDONLY, state.state_dir())
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def head() -> str:
    """The hash of the last entry written ("" when there is none), as audit.head says."""
    try:
        data = json.loads(_read_bytes(HEAD) or b"null")
    except (ValueError, DistrodebugError):
        return ""
    return str(data.get("hash", "")) if isinstance(data, dict) else ""


def entries() -> Iterator[dict[str, Any]]:
    """Every entry that parses, oldest first (use :func:`verify` to know they are intact)."""
    data = _read_bytes(LOG) or b""
    for line in data.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            yield entry


@dataclass
class Verdict:
    path: str
    entries: int = 0
    recordings: int = 0
    #: 1-based line of the first entry that is not as written (0: the end of the log).
    broken_line: int | None = None
    problem: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.broken_line is None

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "ok": self.ok, "entries": self.entries,
                "recordings": self.recordings, "broken_line": self.broken_line,
                "problem": self.problem, "notes": self.notes}


def verify() -> Verdict:
    """Walk the chain from the first line; stop at the first line that is not as written."""
    verdict = Verdict(str(log_path()))
    data = _read_bytes(LOG)
    if data is None:
        verdict.notes.append("there is no audit log yet")
        return verdict

    def broken(line: int, problem: str) -> Verdict:
        verdict.broken_line, verdict.problem = line, problem
        return verdict

    prev = GENESIS
    last_hash = ""
    lines = data.split(b"\n")
    if lines[-1] != b"":
        return broken(len(lines), "the last line is unfinished (no newline)")
    for number, raw in enumerate(lines[:-1], start=1):
        try:
            entry = json.loads(raw)
        except ValueError:
            return broken(number, "it is not JSON")
        if not isinstance(entry, dict):
            return broken(number, "it is not a JSON object")
        if canonical(entry) != raw:
            return broken(number, "it is not in the canonical form it was written in")
        if entry.get("hash") != _entry_hash(entry):
            return broken(number, "its content does not match its own hash (edited)")
        if entry.get("prev") != prev:
            return broken(number, "it does not follow the entry before it (an entry was "
                                  "deleted, inserted or moved here)")
        if entry.get("seq") != number:
            return broken(number, f"it says it is entry {entry.get('seq')}, but it is on line "
                                  f"{number} (entries were deleted, inserted or moved)")
        made = entry.get("recording") or {}
        if isinstance(made, dict) and made.get("sha256"):
            verdict.recordings += 1
            try:
                found = recording.sha256_of(Path(str(made.get("path"))))
            except OSError as exc:
                return broken(number, f"its recording {made.get('path')} cannot be read "
                                      f"({exc.strerror})")
            if found != made["sha256"]:
                return broken(number, f"its recording {made.get('path')} was changed "
                                      f"(sha256 {found[:16]}..., the log says "
                                      f"{str(made['sha256'])[:16]}...)")
        prev = hashlib.sha256(raw + b"\n").hexdigest()
        last_hash = str(entry["hash"])
        verdict.entries = number
    head_data = _read_bytes(HEAD)
    try:
        head = json.loads(head_data) if head_data is not None else None
    except ValueError:
        head = None
    if not isinstance(head, dict):
        verdict.notes.append("audit.head is missing or unreadable: entries cut off the end "
                             "cannot be detected")
    elif head.get("seq") != verdict.entries or head.get("hash") != last_hash:
        return broken(verdict.entries + 1,
                      f"the log ends after entry {verdict.entries}, but entry {head.get('seq')} "
                      "was the last one written (entries were cut off the end)")
    return verdict


def find(entry_id: str) -> list[dict[str, Any]]:
    """The entries of one command (a shell has a start and an end entry), by ID or its prefix."""
    found = [e for e in entries() if str(e.get("id", "")).startswith(entry_id)]
    ids = {e.get("id") for e in found}
    if not found:
        raise UsageError(f"No audit entry has the ID '{entry_id}'.",
                         "'distrodebug audit list' shows the IDs.")
    if len(ids) > 1:
        raise UsageError(f"'{entry_id}' is the start of {len(ids)} entries' IDs.",
                         "Give more of the ID; 'distrodebug audit list' shows them.")
    return found
