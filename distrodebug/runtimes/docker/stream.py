"""Docker's hijacked attach socket as a Stream; no docker SDK import here."""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import Callable
from typing import Any

from distrodebug.model import STDERR, STDOUT


class DockerStream:
    """The hijacked attach socket; demultiplexes Docker's 8-byte frame headers when no TTY.

    Without a TTY the engine frames every read it makes of the container's output (at most
    32 KiB) as ``stream id, 3 zero bytes, big-endian size``. The frame being read is kept as
    state, so a frame may span any number of socket reads; :meth:`recv` and
    :meth:`readinto_stdout` share that state.
    """

    def __init__(self, sock: Any, tty: bool, detach: bytes = b"") -> None:
        self._sock = sock
        self._tty = tty
        self.tty = tty
        #: The detach keys, watched for here in what the user types (with a TTY only).
        self._detach = detach if tty else b""
        self._held = b""  # typed bytes that begin the detach keys, not sent yet
        #: The user typed the detach keys: the stream was ended here, the sidecar still runs.
        self.detached = False
        self._head = bytearray()  # a frame header split across two reads
        self._left = 0  # payload bytes of the current frame not read yet
        self._channel = STDOUT
        sock.settimeout(None)

    def fileno(self) -> int:
        return int(self._sock.fileno())

    def send(self, data: bytes) -> None:
        if self._detach:
            data = self._watch_detach(data)
        if data:
            self._sock.sendall(data)

    def _watch_detach(self, data: bytes) -> bytes:
        """What of ``data`` to send now; ends the stream when the detach keys are complete.

        The keys are also given to the engine, but Podman's attach only sees them when each key
        arrives in a read of its own (its CopyDetachable compares one-byte reads), so keys typed
        fast, pasted, or joined on the way by the socket were sent on to the shell there. Docker
        finds them anywhere in the stream. Watching for them here makes both engines detach
        alike: the bytes typed before them are sent, and a trailing part of them is held until
        the next key shows whether it completes them (as Docker holds it).
        """
        data = self._held + data
        self._held = b""
        at = data.find(self._detach)
        if at >= 0:
            if at:
                self._sock.sendall(data[:at])
            self.detached = True
            self.abort()
            return b""
        for size in range(min(len(self._detach) - 1, len(data)), 0, -1):
            if data.endswith(self._detach[:size]):
                self._held = data[-size:]
                return data[:-size]
        return data

    def pending(self) -> bool:
        # An SSL socket may hold decrypted bytes that select() cannot see.
        return bool(getattr(self._sock, "pending", lambda: 0)())

    def recv(self) -> list[tuple[int, bytes]]:
        try:
            data = self._sock.recv(1 << 18)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            return []
        if self._tty:
            return [(STDOUT, data)]
        frames: list[tuple[int, bytes]] = []
        pos, size = 0, len(data)
        while pos < size:
            if self._left:
                take = min(self._left, size - pos)
                frames.append((self._channel, data[pos : pos + take]))
                pos += take
                self._left -= take
            else:
                pos = self._header(data, pos, size)
        # An empty list would read as end of stream; a partial frame is not the end.
        return frames or [(STDOUT, b"")]

    def readinto_stdout(self, view: memoryview, on_stderr: Callable[[bytes], None]) -> int:
        """Read into ``view`` and keep only stdout there, packed at its start; how many bytes.

        The payload of stdout frames stays where the socket put it (moved down over the frame
        headers at most), so bulk output is copied once from the kernel and never again;
        stderr frames go to ``on_stderr``. 0 only at end of stream.
        """
        recv_into = getattr(self._sock, "recv_into", None)
        while True:
            try:
                if recv_into is not None:
                    size = recv_into(view)
                else:  # a paramiko channel (ssh://) has only recv
                    data = self._sock.recv(len(view))
                    size = len(data)
                    view[:size] = data
            except (ConnectionResetError, BrokenPipeError):
                size = 0
            if not size or self._tty:
                return int(size)
            out = pos = 0
            while pos < size:
                if not self._left:
                    pos = self._header(view, pos, size)
                    continue
                take = min(self._left, size - pos)
                if self._channel == STDERR:
                    on_stderr(bytes(view[pos : pos + take]))
                else:
                    if out != pos:
                        view[out : out + take] = view[pos : pos + take]
                    out += take
                pos += take
                self._left -= take
            if out:
                return out

    def _header(self, data: bytes | memoryview, pos: int, size: int) -> int:
        """Take the next frame header (or the part of it that is there) from ``data[pos:size]``."""
        need = 8 - len(self._head)
        if size - pos < need:
            self._head += data[pos:size]
            return size
        if self._head:
            self._head += data[pos : pos + need]
            channel, self._left = struct.unpack_from(">BxxxL", self._head)
            self._head.clear()
        else:
            channel, self._left = struct.unpack_from(">BxxxL", data, pos)
        self._channel = STDERR if channel == 2 else STDOUT
        return pos + need

    def close_write(self) -> None:
        with contextlib.suppress(OSError):
            if self._held:  # the input ended: a held first key was only typed
                self._sock.sendall(self._held)
                self._held = b""
        with contextlib.suppress(OSError):
            if isinstance(self._sock, socket.socket):
                # An SSL socket's own shutdown() drops its TLS state, and every later read would
                # return ciphertext: half-close the TCP connection beneath it, as the docker CLI
                # does, and go on reading the output through TLS.
                socket.socket.shutdown(self._sock, socket.SHUT_WR)
            else:
                self._sock.shutdown(socket.SHUT_WR)

    def abort(self) -> None:
        """End the stream from another thread: a read blocked on it returns as at its end."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.abort()
        with contextlib.suppress(OSError):
            self._sock.close()

