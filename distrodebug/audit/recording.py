"""Terminal recordings in asciicast v2, the format ``asciinema play`` reads.

A header line (``{"version": 2, "width", "height", "timestamp", "env", "title"}``), then one
JSON array per event: ``[seconds since the start, "o" | "i" | "r", data]``; "o" is what the
terminal was sent, "i" what was typed, "r" a resize as ``"COLSxROWS"``. Each event is written as
it happens, unbuffered, so a session that is killed leaves a valid recording up to that moment.

Secret-looking values are redacted as a dump redacts them (``NAME=value``, ``--password=...``,
tokens by shape), and so is the line typed after a password prompt (the terminal does not echo
it, but the input events would hold it). The shell echoes input one character at a time, so
redaction works on lines: the text of a line that could still become a secret (it holds ``=`` or
``:``, or a token's first letters) is held back until the line ends, then redacted with the
whole line as context.
Text that cannot is written at once, so the recording keeps its timing. Redaction here is the
same courtesy as in a dump, not a guarantee.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import re
import select
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from distrodebug.audit import state
from distrodebug.bundle.redact import REDACTED, redact_text
from distrodebug.errors import DistrodebugError

RECORDINGS = "recordings"
#: Text that may become part of a secret once its line is complete.
_RISKY = ("=", ":", "-----BEGIN", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_",
          "glpat-", "k_live_", "k_test_", "xox", "AKIA", "ASIA", "eyJ")
#: A held line longer than this is written anyway (full-screen programs may never end a line).
_MAX_HELD = 4096
#: A prompt for a secret the terminal will not echo (su, sudo, mysql -p, ssh, gpg): the next
#: line typed is recorded as redacted, whatever it holds.
_SECRET_PROMPT = re.compile(r"(?i)(pass(word|phrase)?|pin|secret|token|otp)\b[^\n]{0,40}:\s*$")


class RecordingError(DistrodebugError):
    """A recording cannot be written, read or replayed."""


class _Lines:
    """Redacts a stream of text line by line, holding back only what could still be a secret."""

    def __init__(self, ends: str) -> None:
        self._ends = ends
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._line = ""  # what of the current line was already let out
        self._held = ""

    def feed(self, data: bytes) -> str:
        return self._take(self._decoder.decode(data))

    def flush(self) -> str:
        text = self._take(self._decoder.decode(b"", final=True))
        return text + self._release()

    def _take(self, text: str) -> str:
        # Whole lines are redacted together, in one call per piece of output (not per line:
        # a 64 KiB piece of short lines would cost a call, and a copy of the rest, per line).
        combined = self._held + text
        cut = max(combined.rfind(end) for end in self._ends)
        out = ""
        if cut >= 0:
            self._held = combined[: cut + 1]
            out = self._release()
            self._line, self._held = "", combined[cut + 1 :]
        else:
            self._held = combined
        if self._held and (len(self._held) > _MAX_HELD or not any(
                mark in self._line[-_MAX_HELD:] + self._held for mark in _RISKY)):
            out += self._release()
        return out

    def _release(self) -> str:
        held, self._held = self._held, ""
        if not held:
            return ""
        context = self._line[-_MAX_HELD:]  # bounded: a line without end must not cost n²
        whole, _ = redact_text(context + held)
        piece = whole[len(context):] if whole.startswith(context) else redact_text(held)[0]
        self._line = context + piece
        return piece


class Recorder:
    """Writes one asciicast v2 recording; the terminal pump's tap (terminal.Tap)."""

    def __init__(self, fd: int, path: Path, *, rows: int, cols: int, title: str,
                 term: str, shell: str = "/bin/sh", clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self.path = path
        self._fd = fd
        self._clock = clock
        self._start = clock()
        self._out = _Lines("\n")
        self._in = _Lines("\r\n")
        self._tail = ""  # the end of the output, to see a password prompt
        self._hidden = False  # the line being typed answers one
        self._digest = hashlib.sha256()
        header = {"version": 2, "width": cols, "height": rows, "timestamp": int(time.time()),
                  "env": {"TERM": term, "SHELL": shell}, "title": title}
        self._write(json.dumps(header, ensure_ascii=False))

    @classmethod
    def create(cls, name: str, *, rows: int, cols: int, title: str, term: str,
               clock: Callable[[], float] = time.monotonic) -> Recorder:
        """A new recording ``name``.cast in the state directory (never an existing file)."""
        with state.directory(RECORDINGS) as dir_fd:
            where = state.state_dir() / RECORDINGS
            fd = state.open_private(dir_fd, f"{name}.cast",
                                    os.O_WRONLY | os.O_CREAT | os.O_EXCL, where)
        return cls(fd, where / f"{name}.cast", rows=rows, cols=cols, title=title, term=term,
                   clock=clock)

    def _write(self, line: str) -> None:
        data = (line + "\n").encode("utf-8", "surrogateescape")
        self._digest.update(data)
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]

    def _event(self, kind: str, text: str) -> None:
        if text and self._fd >= 0:
            stamp = round(self._clock() - self._start, 6)
            self._write(json.dumps([stamp, kind, text], ensure_ascii=False))

    def output(self, data: bytes) -> None:
        self._tail = (self._tail + data[-256:].decode("utf-8", "replace"))[-256:]
        self._event("o", self._out.feed(data))

    def input(self, data: bytes) -> None:
        if not self._hidden and _SECRET_PROMPT.search(self._tail):
            self._hidden = True
            self._tail = ""
        if self._hidden:
            ends = [i for i in (data.find(b"\r"), data.find(b"\n")) if i >= 0]
            if not ends:
                return
            self._hidden = False
            self._event("i", f"{REDACTED}\r")
            data = data[min(ends) + 1:]
        self._event("i", self._in.feed(data))

    def resize(self, rows: int, cols: int) -> None:
        self._event("r", f"{cols}x{rows}")

    def close(self) -> str:
        """Write what is still held, close, and return the recording's sha256."""
        if self._fd >= 0:
            self._event("i", self._in.flush())
            self._event("o", self._out.flush())
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
        return self._digest.hexdigest()


@dataclass(frozen=True)
class Event:
    seconds: float
    kind: str
    data: str


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def read(path: Path) -> tuple[dict[str, object], Iterator[Event]]:
    """The header and the events of a recording; RecordingError when it is not asciicast v2."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise RecordingError(f"The recording {path} cannot be read: {exc.strerror}.",
                             "It may have been moved or removed; 'distrodebug audit verify' "
                             "checks every recording the log names.") from None
    handle = os.fdopen(fd, "r", encoding="utf-8", errors="surrogateescape")
    try:
        header = json.loads(handle.readline() or "null")
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("version") != 2:
        handle.close()
        raise RecordingError(f"{path} is not an asciicast v2 recording.",
                             "Run 'distrodebug audit verify' to check it against the log.")

    def events() -> Iterator[Event]:
        with handle:
            for number, line in enumerate(handle, start=2):
                try:
                    seconds, kind, data = json.loads(line)
                    yield Event(float(seconds), str(kind), str(data))
                except (ValueError, TypeError):
                    raise RecordingError(f"Line {number} of {path} is not an asciicast event.",
                                         "Run 'distrodebug audit verify'.") from None

    return header, events()


def replay(path: Path, out_fd: int, *, speed: float = 1.0, max_wait: float | None = 2.0,
           wait: bool = True, sleep: Callable[[float], None] = time.sleep) -> int:
    """Write a recording's output events to ``out_fd`` in order, at ``speed`` (pauses capped at
    ``max_wait`` seconds; none when ``wait`` is false); returns the bytes written."""
    _, events = read(path)
    last, written = 0.0, 0
    for event in events:
        if event.kind != "o":
            continue
        if wait and speed > 0:
            pause = (event.seconds - last) / speed
            if max_wait is not None:
                pause = min(pause, max_wait)
            if pause > 0:
                sleep(pause)
        last = event.seconds
        data = event.data.encode("utf-8", "surrogateescape")
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(out_fd, view):]
            except BlockingIOError:
                select.select([], [out_fd], [])
        written += len(data)
    return written
