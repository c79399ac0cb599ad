"""The debugger's exit mark: printed last by the real entry script, taken out of the output here.

An interactive Kubernetes debugger (DD_MARK=1) ends its output with sidecar.EXIT_MARK, its
status and BEL; the attach stream's ExitMarks strips every mark from what reaches the terminal and
the recording and keeps the status of a mark nothing followed, which spares the watch that used
to read the exit status from the API server.
"""

from __future__ import annotations

import os
import pty
import random
import shutil
import subprocess
from typing import Any

import pytest

from distrodebug import privileges, sidecar
from distrodebug.model import STDOUT, TargetInfo
from distrodebug.runtimes.kubernetes.stream import STDOUT_CH, ExitMarks, WebSocketStream
from distrodebug.sidecar import EXIT_MARK


def mark(code: int) -> bytes:
    return EXIT_MARK + str(code).encode() + b"\x07"


def run(pieces: list[bytes]) -> tuple[bytes, int | None]:
    marks = ExitMarks()
    seen = b"".join(marks.feed(piece) for piece in pieces) + marks.flush()
    return seen, marks.code


def splits(data: bytes, rng: random.Random, count: int = 200) -> list[list[bytes]]:
    """Every cut into two pieces, byte by byte, and random cuts into several."""
    out = [[data[:i], data[i:]] for i in range(len(data) + 1)]
    out.append([data[i:i + 1] for i in range(len(data))])
    for _ in range(count):
        cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 8))))
        out.append([data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)])
    return out


def test_the_last_mark_is_taken_out_and_its_status_kept_whatever_the_reads() -> None:
    shell = b"\x1b[1m[distrodebug api] / # \x1b[0mexit 7\r\n"
    for pieces in splits(shell + mark(7), random.Random(1)):
        assert run(pieces) == (shell, 7), pieces
    assert run([mark(0)]) == (b"", 0)
    assert run([b"bye\r\n" + mark(255)]) == (b"bye\r\n", 255)


def test_earlier_marks_are_taken_out_but_never_decide_the_status() -> None:
    # A program in the session printed marks (cat of a file, a nested distrodebug): ours is last.
    data = b"a" + mark(3) + b"b\r\n" + mark(9) + mark(4) + b"$ exit\r\n" + mark(0)
    for pieces in splits(data, random.Random(2)):
        assert run(pieces) == (b"ab\r\n$ exit\r\n", 0), pieces
    # Output after the last mark (no mark of ours came): no status, the caller asks the cluster.
    assert run([b"x" + mark(3) + b"later output"]) == (b"xlater output", None)
    assert run([mark(3), b"\r\n"]) == (b"\r\n", None)


@pytest.mark.parametrize("data", [
    EXIT_MARK + b"12x\x07",               # a non-digit
    EXIT_MARK + b"\x07",                  # no digits
    EXIT_MARK + b"1234\x07",              # more digits than a status has
    EXIT_MARK[:-1] + b":1\x07",           # another key
    b"\x1b]0;window title\x07",           # another OSC sequence
    b"\x1b[31mred\x1b[0m \x1b]7735",      # ends like the start of a mark, and is not one
    EXIT_MARK + b"7",                     # the start of a mark at the very end of the stream
    b"\x1b",
])
def test_bytes_that_only_look_like_a_mark_go_through_unchanged(data: bytes) -> None:
    for pieces in splits(data, random.Random(3), 50) if len(data) > 1 else [[data]]:
        assert run(pieces) == (data, None), pieces
    # Followed by a real mark, they still come out in order and the status is the mark's.
    for pieces in splits(data + b"tail" + mark(6), random.Random(4), 50):
        assert run(pieces) == (data + b"tail", 6), pieces


def test_without_a_mark_everything_goes_through_and_there_is_no_status() -> None:
    data = bytes(range(256)) * 3
    for pieces in splits(data, random.Random(5), 50):
        assert run(pieces) == (data, None)


def test_only_a_possible_partial_mark_is_held_back() -> None:
    marks = ExitMarks()
    assert marks.feed(b"prompt $ \x1b]77") == b"prompt $ "
    assert marks.feed(b"35;distrodebug-exit=4") == b""
    assert marks.feed(b"2\x07") == b"" and marks.code == 42
    assert marks.feed(b"ls\r\n\x1b") == b"ls\r\n" and marks.code is None
    assert marks.feed(b"[0m") == b"\x1b[0m"


class _Frames:
    """websocket-client's side of a finished attach: stdout frames, then the close."""

    sock = None

    def __init__(self, *payloads: bytes) -> None:
        import websocket

        self._frames: list[tuple[int, bytes]] = [
            (websocket.ABNF.OPCODE_BINARY, bytes([STDOUT_CH]) + p) for p in payloads]
        self._frames.append((websocket.ABNF.OPCODE_CLOSE, b""))

    def getheaders(self) -> dict[str, str]:
        return {}

    def getsubprotocol(self) -> str:
        return "v5.channel.k8s.io"

    def recv_data(self, control_frame: bool = False) -> tuple[int, bytes]:
        return self._frames.pop(0)


def test_the_attach_stream_strips_marks_and_hands_over_a_held_tail_at_its_end() -> None:
    ws: Any = _Frames(b"$ exit 7\r\n" + EXIT_MARK[:5], EXIT_MARK[5:] + b"7\x07")
    stream = WebSocketStream(ws)
    stream.watch_exit_marks()
    got = [stream.recv() for _ in range(3)]
    assert got == [[(STDOUT, b"$ exit 7\r\n")], [(STDOUT, b"")], []]
    assert stream.exit_marks is not None and stream.exit_marks.code == 7
    assert stream.pending() and stream.recv() == []  # ended: no select on a closed socket
    ws = _Frames(b"done \x1b]77")
    stream = WebSocketStream(ws)
    stream.watch_exit_marks()
    assert [stream.recv() for _ in range(3)] == [[(STDOUT, b"done ")], [(STDOUT, b"\x1b]77")], []]
    assert stream.exit_marks is not None and stream.exit_marks.code is None


def _shells() -> list[str]:
    found = [path for path in (shutil.which("busybox"), shutil.which("dash")) if path]
    assert shutil.which("busybox"), "busybox (busybox-static) is needed: the toolbox is built from it"
    return found


@pytest.mark.parametrize("shell", _shells())
@pytest.mark.parametrize("marked", [True, False])
def test_the_real_entry_script_prints_its_status_last_through_a_tty(shell: str, marked: bool) -> None:
    """busybox ash (printf is a builtin there) and dash run the join script in a pty, as a TTY
    debugger does; the TTY hands the mark over unchanged, after anything the command printed."""
    argv = [shell, "sh", "-c"] if shell.endswith("busybox") else [shell, "-c"]
    command = ["sh", "-c", f"printf 'fake %s\\n' '{mark(3).decode()}'; env; exit 7"]
    target = TargetInfo(id="c0ffee", name="api", image="app:1", image_id="sha256:1",
                        status="running", user="")
    spec = sidecar.build_spec(info=target, mode="join", image="tools:1", tty=True, stdin=True,
                              privileges=privileges.choose_docker(target), command=command,
                              labels={}, reaper=None)
    env = {"PATH": os.environ["PATH"], "DD_SCRIPT": spec.env["DD_SCRIPT"],
           "DD_PID": str(os.getpid()), "DD_VIEW": "proc", "DD_SH": "/bin/sh", "DD_WORKDIR": "/"}
    if marked:
        env["DD_MARK"] = "1"
    primary, secondary = pty.openpty()
    proc = subprocess.Popen([*argv, 'eval "$DD_SCRIPT"', "distrodebug", *command], env=env,
                            stdin=secondary, stdout=secondary, stderr=secondary, close_fds=True)
    os.close(secondary)
    raw = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:
            break
        if not chunk:
            break
        raw += chunk
    os.close(primary)
    assert proc.wait(timeout=30) == 7
    assert raw.endswith(mark(7)) == marked, raw
    assert raw.count(EXIT_MARK) == (2 if marked else 1)
    assert b"DD_MARK" not in raw  # the command does not inherit it
    for pieces in splits(raw, random.Random(6), 50):
        seen, code = run(pieces)
        assert EXIT_MARK not in seen and b"fake \r\n" in seen
        assert code == (7 if marked else None)
