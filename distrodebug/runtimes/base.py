"""The protocols the core talks to; the records that cross them live in distrodebug.model.

``Runtime`` is everything a debug session, a copy or a dump needs from an engine or a cluster;
``Inventory`` lists and removes what distrodebug created there. The core never needs to know
which runtime it has: when it would, a method belongs here.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import BinaryIO, Protocol

from distrodebug.model import (
    DebugOptions,
    DumpMeta,
    ImageInfo,
    Mode,
    OwnedObject,
    Privileges,
    RelaySpec,
    RuntimeState,
    SidecarSpec,
    TargetInfo,
)
from distrodebug.target import Target


class Stream(Protocol):
    """A bidirectional byte stream to the sidecar's process."""

    def fileno(self) -> int: ...

    def send(self, data: bytes) -> None: ...

    def recv(self) -> list[tuple[int, bytes]]:
        """Whatever arrived, as (channel, bytes) pairs; an empty list means end of stream."""
        ...

    def readinto_stdout(self, view: memoryview, on_stderr: Callable[[bytes], None]) -> int:
        """Read stdout into ``view`` (stderr goes to ``on_stderr``); 0 at the end of the stream."""
        ...

    def pending(self) -> bool:
        """True when bytes are already buffered and select() would not see them."""
        ...

    def close_write(self) -> None: ...

    def close(self) -> None: ...


class Sidecar(Protocol):
    id: str
    name: str
    #: Things to tell the user after the session ("kept pod ...", "debugger exited with 3").
    notes: list[str]

    @property
    def stream(self) -> Stream | None: ...

    def resize(self, rows: int, cols: int) -> None: ...

    def wait(self) -> int: ...

    def remove(self) -> None: ...


class Runtime(Protocol):
    """One engine or cluster. The session drives it; it never prints."""

    #: "docker" or "kubernetes", for bundles and messages.
    kind: str
    #: Where the runtime talks to, for messages ("unix:///var/run/docker.sock").
    endpoint: str

    def inspect(self, target: Target) -> TargetInfo: ...

    def ensure_image(self, ref: str, notice: Callable[[str], None]) -> ImageInfo: ...

    def privileges(self, info: TargetInfo, options: DebugOptions) -> tuple[Mode, Privileges]:
        """How to reach the target (join a running one, or a copy) and with what privilege."""
        ...

    def start_sidecar(self, spec: SidecarSpec, info: TargetInfo) -> Sidecar: ...

    def target_state(self, info: TargetInfo) -> str:
        """The target's status now ('running', 'exited', ... or 'removed')."""
        ...

    def where(self, mode: Mode, info: TargetInfo, privileges: Privileges) -> str:
        """For the banner: where the user is and what happens to it on exit."""
        ...

    def announce(self, info: TargetInfo, message: str) -> str:
        """Leave ``message`` in the platform's own history of the target (a Kubernetes Event on
        the pod) where there is one; "" when done or not applicable, else a notice for the user."""
        ...

    def gone_hint(self, info: TargetInfo) -> str:
        """What to run to find out what happened to a target that vanished mid-session."""
        ...

    def audit_identity(self, info: TargetInfo) -> dict[str, str]:
        """The IDs that tie an audit entry to the platform's own records of the target (a
        container's ID; a pod's name, UID, namespace, container and container ID)."""
        ...

    def memory_attempts(self, options: DebugOptions, owner: tuple[int, int] | None) -> list[DebugOptions]:
        """The options to try, in order, for a sidecar that reads the target's memory: least
        privilege first, the next when the kernel (or the platform) refuses. ``owner`` is the
        uid and gid every target process runs as, when they share one."""
        ...

    def server_version(self) -> str: ...

    def read_archive(self, info: TargetInfo, path: str) -> AbstractContextManager[BinaryIO]:
        """A target that cannot be joined (stopped, an image): ``path`` as a tar stream."""
        ...

    def write_archive(self, info: TargetInfo, into: str, source: BinaryIO) -> None:
        """A target that cannot be joined: unpack a tar stream into directory ``into``."""
        ...

    def is_dir(self, info: TargetInfo, path: str) -> bool:
        """A target that cannot be joined: is ``path`` a directory in it?"""
        ...

    def dump_meta(self, info: TargetInfo) -> DumpMeta:
        """Identity, runtime metadata and declared environment for a dump bundle."""
        ...

    def volatile_state(self, info: TargetInfo) -> RuntimeState:
        """The target's state, recent events and timestamped logs (the previous run's too, where
        the runtime keeps them), bounded in size; read first in a dump. Parts that cannot be read
        (no permission, no log driver) are left empty with a note, never an error."""
        ...


class Inventory(Protocol):
    """What distrodebug created on an engine or in a namespace: for `sessions` and `cleanup`."""

    endpoint: str

    def list_ours(self) -> list[OwnedObject]: ...

    def remove_objects(self, objects: list[tuple[str, str]]) -> None:
        """Remove (kind, id) pairs; ones already gone are fine."""
        ...


class Relay(Protocol):
    """What `forward` started beside a target; each connect() is one new connection."""

    id: str

    def connect(self, port: int) -> Stream:
        """A byte stream to 127.0.0.1:``port`` in the target's network namespace (stdout channel
        carries the port's bytes, stderr the relay's complaints)."""
        ...

    def remove(self) -> None: ...


class PortForwarding(Protocol):
    """A runtime that can reach a target's ports, loopback-only ones included."""

    def start_relay(self, spec: RelaySpec, info: TargetInfo) -> Relay: ...
