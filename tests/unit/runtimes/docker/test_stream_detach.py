"""The detach keys are found in what is typed however the bytes are cut into reads.

Podman's attach sees them only when each key comes in a read of its own, so the stream watches
for them itself (stream.py); these cover the cuts that beat Podman.
"""

from __future__ import annotations

import socket
import threading

import pytest

from distrodebug.runtimes.docker.stream import DockerStream
from distrodebug.settings import DETACH_BYTES


def _sent(pieces: list[bytes], tty: bool = True) -> tuple[bytes, bool]:
    ours, engine = socket.socketpair()
    got = bytearray()

    def read() -> None:  # the engine's side reads as we send: more than a buffer holds
        while chunk := engine.recv(65536):
            got.extend(chunk)

    reader = threading.Thread(target=read)
    engine.settimeout(10)
    reader.start()
    with ours, engine:
        stream = DockerStream(ours, tty, DETACH_BYTES)
        for piece in pieces:
            if stream.detached:
                break
            stream.send(piece)
        detached = stream.detached
        if not detached:
            stream.close_write()
        reader.join()
    return bytes(got), detached


@pytest.mark.parametrize("pieces", [
    [b"\x1d\x1d"],  # one read: Podman sends both keys on to the shell
    [b"\x1d", b"\x1d"],
    [b"ls\x1d", b"\x1dmore"],
    [b"echo \x1d\x1d"],
])
def test_the_keys_end_the_stream_and_what_came_before_is_sent(pieces: list[bytes]) -> None:
    got, detached = _sent(pieces)
    assert detached
    assert got == b"".join(pieces).split(DETACH_BYTES)[0]


def test_a_lone_key_is_held_until_the_next_key_shows_it_was_typed() -> None:
    assert _sent([b"a\x1d", b"b"]) == (b"a\x1db", False)


def test_a_held_key_is_not_lost_when_the_next_key_is_another() -> None:
    assert _sent([b"\x1d", b"x\x1d", b"y"]) == (b"\x1dx\x1dy", False)


def test_without_a_tty_the_bytes_are_data() -> None:
    assert _sent([b"\x1d\x1d\x1d"], tty=False) == (b"\x1d\x1d\x1d", False)


def test_large_input_passes_whole() -> None:
    data = bytes(range(256)).replace(b"\x1d", b"") * 4096
    assert _sent([data[:70000], data[70000:]]) == (data, False)


def test_a_key_held_at_the_end_of_the_input_is_sent_then() -> None:
    assert _sent([b"a\x1d"]) == (b"a\x1d", False)
