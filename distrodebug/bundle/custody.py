"""Chain of custody: who collected a bundle, where, when, from what, in which order; and a log of
everyone who handled it since.

The **custody record** is the manifest's ``custody`` object, so the bundle digest (and a
signature over it) covers it::

    version      1
    collector    {"user", "uid", "host"}: the local account and host that ran the dump (and
                 "euid", "sudo_user" when they differ or are set)
    tool         {"name", "version", "python"}
    command      the dump's command line, secret-looking values redacted (--sign's key path too)
    started      UTC time the collection started (ISO 8601, milliseconds)
    ended        UTC time the collection ended (the filesystem stream was complete)
    clock        {"source", "synchronized", "max_error_us", "how"}: what the times are worth
    target       who was collected: runtime and its endpoint (engine socket or API server),
                 container ID and name, image, image digest;
                 on Kubernetes also pod, pod UID, namespace, node and owner references
    order        how the phases were ordered (RFC 3227: most volatile first)
    phases       [{"name", "what", "started", "ended", "status"}], in the order they ran
    signer       {"public_key", "fingerprint"} of the key that signs BUNDLE.sig, or null

The **custody log** ``BUNDLE.custody.jsonl`` sits beside the bundle, mode 0600: one JSON object
per line, written with a single ``O_APPEND`` write under an exclusive ``flock``; it is opened with
``O_NOFOLLOW`` (a planted symlink is refused, never followed) and a file with more than one hard
link is refused too. The dump writes its first line (``collected``); each ``verify`` and
``extract`` appends one (``verified``, ``extracted``). Each line holds who, host, UTC time,
action, result, the manifest digest that action saw, and ``prev``: the sha256 of the line before
it, so a line edited or removed in the middle breaks the chain (a cut at the end does not: the
log is a record kept beside the bundle, not a signature).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import hashlib
import json
import os
import platform
import socket
import stat
import struct
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from distrodebug.bundle.format import tool_version
from distrodebug.bundle.redact import redact_data

VERSION = 1
LOG_SUFFIX = ".custody.jsonl"
#: The longest custody log read back (a log of a busy bundle stays far below it).
MAX_LOG = 16 << 20
#: The order the dump runs its phases in, written into the record.
ORDER = "RFC 3227 order of volatility: the most volatile state first, the filesystem last"
#: Identity keys copied from the runtime's target record into the custody record.
_TARGET_KEYS = (
    "runtime", "endpoint", "container_id", "container_name", "image", "image_id", "image_digest",
    "repo_digests", "status", "pod", "pod_uid", "namespace", "container", "node", "owners",
)  # fmt: skip
#: Command-line options whose value never enters the record (a private key's location).
_HIDDEN_OPTIONS = ("--sign",)


def utc_now() -> str:
    """The current UTC time, ISO 8601 with milliseconds and a Z."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def collector() -> dict[str, Any]:
    """The local account and host running distrodebug."""
    uid = os.getuid()
    try:
        import pwd

        user = pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        user = os.environ.get("USER") or os.environ.get("LOGNAME") or f"uid {uid}"
    found: dict[str, Any] = {"user": user, "uid": uid, "host": socket.gethostname()}
    if os.geteuid() != uid:
        found["euid"] = os.geteuid()
    if os.environ.get("SUDO_USER"):  # said by sudo, not proven: context for the record
        found["sudo_user"] = os.environ["SUDO_USER"]
    return found


def clock() -> dict[str, Any]:
    """What the recorded times are worth: the system clock, and whether the kernel says it is
    synchronised (adjtimex(2) with no change asked, as timedatectl reads it); unknown elsewhere."""
    found: dict[str, Any] = {
        "source": "system clock (CLOCK_REALTIME) of the collecting host, in UTC",
        "synchronized": None, "max_error_us": None, "how": "unknown",
    }  # fmt: skip
    synced = _adjtimex()
    if synced is not None:
        found["synchronized"], found["max_error_us"] = synced
        found["how"] = "adjtimex(2): kernel NTP state"
    return found


def _adjtimex() -> tuple[bool, int] | None:
    """(synchronised, maximum error in microseconds) from adjtimex, or None where unknown.

    struct timex on 64-bit Linux: modes (int, padded to 8), offset, freq, maxerror, esterror
    (longs), status (int). A zero ``modes`` only reads; the result TIME_ERROR (5) and the
    STA_UNSYNC status bit both mean "not synchronised".
    """
    if platform.system() != "Linux" or struct.calcsize("l") != 8:
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)  # the C library Python runs on (no ldconfig)
        buf = ctypes.create_string_buffer(512)  # larger than any struct timex
        state = int(libc.adjtimex(buf))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    maxerror, = struct.unpack_from("l", buf.raw, 24)
    status, = struct.unpack_from("i", buf.raw, 40)
    sta_unsync = 0x0040
    return state != 5 and not status & sta_unsync, int(maxerror)


def command_line(argv: Sequence[str]) -> list[str]:
    """``argv`` as the record keeps it: values of secret-looking options and --sign's key path
    replaced."""
    out: list[str] = []
    hide = False
    for arg in argv:
        if hide:
            out.append("<private key, not recorded>")
            hide = False
            continue
        name, eq, _ = arg.partition("=")
        if name in _HIDDEN_OPTIONS:
            if eq:
                out.append(f"{name}=<private key, not recorded>")
            else:
                out.append(arg)
                hide = True
            continue
        out.append(arg)
    redacted, _ = redact_data(out)
    return [str(item) for item in redacted]


def target_record(identity: Mapping[str, Any]) -> dict[str, Any]:
    """The identity keys of the runtime's target record that say which target this was."""
    return {key: identity[key] for key in _TARGET_KEYS if key in identity}


@dataclass
class Phase:
    name: str
    what: str
    started: str
    ended: str | None = None
    status: str = "running"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "what": self.what, "started": self.started,
                "ended": self.ended, "status": self.status}


@dataclass
class Record:
    """The custody record of one dump, filled in as it runs."""

    command: list[str]
    target: dict[str, Any] = field(default_factory=dict)
    signer: dict[str, str] | None = None
    started: str = field(default_factory=utc_now)
    ended: str | None = None
    phases: list[Phase] = field(default_factory=list)

    @contextlib.contextmanager
    def phase(self, name: str, what: str) -> Iterator[Phase]:
        """Time one phase; a phase that raises is recorded as failed (the dump then fails)."""
        current = Phase(name, what, utc_now())
        self.phases.append(current)
        try:
            yield current
        except BaseException:
            current.status = "failed"
            raise
        finally:
            if current.ended is None:
                current.ended = utc_now()
        if current.status == "running":
            current.status = "ok"

    def phase_started(self, name: str, what: str) -> None:
        """Start a phase that :meth:`finish` ends (the filesystem: the writer finishes it)."""
        self.phases.append(Phase(name, what, utc_now()))

    def skipped(self, name: str, what: str, why: str) -> None:
        now = utc_now()
        self.phases.append(Phase(name, what, now, now, f"skipped: {why}"))

    def finish(self) -> dict[str, Any]:
        """The record as the manifest holds it; phases still open end now (the filesystem phase
        ends when the writer starts the manifest)."""
        now = utc_now()
        for open_phase in self.phases:
            if open_phase.ended is None:
                open_phase.ended = now
                open_phase.status = "ok"
        self.ended = now
        return {
            "version": VERSION,
            "collector": collector(),
            "tool": {"name": "distrodebug", "version": tool_version(),
                     "python": platform.python_version()},
            "command": self.command,
            "started": self.started,
            "ended": self.ended,
            "clock": clock(),
            "target": self.target,
            "order": ORDER,
            "phases": [p.to_json() for p in self.phases],
            "signer": self.signer,
        }


# -- the custody log -------------------------------------------------------------------------------


class LogRefused(Exception):
    """The custody log cannot be used safely (a symlink, a hard link, not a regular file)."""


def log_path(bundle: str | Path) -> Path:
    return Path(f"{bundle}{LOG_SUFFIX}")


def _open_log(path: Path, flags: int) -> int:
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LogRefused(f"{path} is a symbolic link; it was not followed") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
        os.close(fd)
        raise LogRefused(f"{path} is not a regular file with one link; it was not used")
    return fd


def _read_all(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    if size > MAX_LOG:
        raise LogRefused(f"the custody log is larger than {MAX_LOG >> 20} MiB")
    return os.pread(fd, size, 0)


def append(bundle: str | Path, action: str, result: str, digest: str | None,
           detail: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Append one line to the bundle's custody log and return it.

    Raises :class:`LogRefused` for a log that is unsafe to write and OSError when it cannot be
    written; the caller reports either as a warning (the bundle itself is unaffected).
    """
    path = log_path(bundle)
    fd = _open_log(path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_uid == os.getuid():
            os.fchmod(fd, 0o600)
        previous = _read_all(fd).rstrip(b"\n").rpartition(b"\n")[2]
        line = {
            "time": utc_now(), "action": action, "result": result, **collector(),
            "tool_version": tool_version(),
            "digest": f"sha256:{digest}" if digest else None,
            "detail": dict(detail or {}),
            "prev": hashlib.sha256(previous).hexdigest() if previous else None,
        }  # fmt: skip
        data = (json.dumps(line, sort_keys=False, default=str) + "\n").encode()
        written = os.write(fd, data)
        if written != len(data):
            raise OSError(errno.EIO, "short write to the custody log")
        os.fsync(fd)
    finally:
        os.close(fd)
    return line


@dataclass
class Log:
    """The custody log as read back: its lines and whether their chain holds."""

    path: str
    entries: list[dict[str, Any]] = field(default_factory=list)
    chain_ok: bool = True
    problem: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "entries": self.entries, "chain_ok": self.chain_ok,
                "problem": self.problem}


def read_log(bundle: str | Path) -> Log:
    """The custody log beside ``bundle``, its ``prev`` chain checked; a missing log is empty."""
    path = log_path(bundle)
    log = Log(str(path))
    try:
        fd = _open_log(path, os.O_RDONLY)
    except FileNotFoundError:
        log.problem = "no custody log"
        return log
    except (LogRefused, OSError) as exc:
        log.chain_ok, log.problem = False, str(exc)
        return log
    try:
        data = _read_all(fd)
    except LogRefused as exc:
        log.chain_ok, log.problem = False, str(exc)
        return log
    finally:
        os.close(fd)
    previous = b""
    for number, raw in enumerate(data.splitlines(), 1):
        try:
            entry = json.loads(raw)
            if not isinstance(entry, dict):
                raise ValueError("not an object")
        except (ValueError, RecursionError):
            log.chain_ok, log.problem = False, f"line {number} is not a JSON object"
            break
        want = hashlib.sha256(previous).hexdigest() if previous else None
        if entry.get("prev") != want and log.chain_ok:
            log.chain_ok, log.problem = False, f"line {number} does not follow the line before it"
        log.entries.append(entry)
        previous = raw
    return log


def record_safely(bundle: str | Path, action: str, result: str, digest: str | None,
                  detail: Mapping[str, Any] | None, warn: Callable[[str], None]) -> None:
    """:func:`append`, any failure turned into a warning."""
    try:
        append(bundle, action, result, digest, detail)
    except LogRefused as exc:
        warn(f"custody log not written: {exc}")
    except OSError as exc:
        warn(f"custody log not written: {log_path(bundle)}: {exc.strerror or exc}")
