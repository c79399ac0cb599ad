"""The protocols every runtime implements; the records that cross them live in distrodebug.model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from distrodebug.model import ImageInfo, Mode, Privileges, SidecarSpec, TargetInfo
from distrodebug.target import Target


class Stream(Protocol):
    """A bidirectional byte stream to the sidecar's process."""

    def fileno(self) -> int: ...

    def send(self, data: bytes) -> None: ...

    def recv(self) -> list[tuple[int, bytes]]:
        """Whatever arrived, as (channel, bytes) pairs; an empty list means end of stream."""
        ...

    def pending(self) -> bool:
        """True when bytes are already buffered and select() would not see them."""
        ...

    def close_write(self) -> None: ...

    def close(self) -> None: ...


class Sidecar(Protocol):
    id: str
    name: str

    @property
    def stream(self) -> Stream | None: ...

    def resize(self, rows: int, cols: int) -> None: ...

    def wait(self) -> int: ...

    def remove(self) -> None: ...


class Runtime(Protocol):
    """One engine or cluster. The session drives it; it never prints."""

    #: Where the runtime talks to, for messages ("unix:///var/run/docker.sock").
    endpoint: str

    def inspect(self, target: Target) -> TargetInfo: ...

    def ensure_image(self, ref: str, notice: Callable[[str], None]) -> ImageInfo: ...

    def privileges(
        self, info: TargetInfo, *, user: str | None, cap_add: tuple[str, ...], privileged: bool
    ) -> tuple[Mode, Privileges]:
        """How to reach the target (join a running one, or a copy) and with what privilege."""
        ...

    def start_sidecar(self, spec: SidecarSpec, info: TargetInfo) -> Sidecar: ...

    def target_state(self, info: TargetInfo) -> str:
        """The target's status now ('running', 'exited', ... or 'removed')."""
        ...
