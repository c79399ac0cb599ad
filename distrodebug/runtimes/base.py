"""The small interface every runtime implements, and the plain data that crosses it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ..target import Target

if TYPE_CHECKING:
    from ..profiles import Privileges

Mode = Literal["join", "snapshot", "image", "node"]
#: stdout and stderr channel numbers, as Docker's stream header and Kubernetes' channels use them.
STDOUT, STDERR = 1, 2


def is_root_user(user: str) -> bool:
    """True for 0, root, 0:0, root:root and the like."""
    return user.split(":", 1)[0] in ("0", "root")


@dataclass(frozen=True)
class TargetInfo:
    """What the runtime found out about the target; enough to plan the sidecar."""

    id: str
    name: str
    image: str
    image_id: str
    #: running, exited, created, restarting, paused, dead, or "image" for a plain image.
    status: str
    user: str = ""
    read_only: bool = False
    ipc_shareable: bool = False
    #: PID of the target's main process as the sidecar sees it (1 unless the target uses the host's).
    pid: int = 1
    workdir: str = "/"
    path: str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    repo_digests: tuple[str, ...] = ()
    #: The runtime's own description of the target (docker inspect, the pod object).
    raw: Mapping[str, Any] = field(default_factory=dict)
    #: Kubernetes: the target container and its namespace; a note on how it was chosen.
    container: str = ""
    namespace: str = ""
    note: str = ""

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def runs_as_root(self) -> bool:
        """True when the configured user is root (empty, 0, root, with any group)."""
        return self.user == "" or is_root_user(self.user)


@dataclass(frozen=True)
class ImageInfo:
    ref: str
    id: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SidecarSpec:
    """Everything a runtime needs to start the debug sidecar; built by pure functions."""

    image: str
    argv: tuple[str, ...]
    mode: Mode
    target_id: str
    labels: Mapping[str, str]
    env: Mapping[str, str] = field(default_factory=dict)
    user: str | None = None
    cap_add: tuple[str, ...] = ()
    privileged: bool = False
    tty: bool = False
    stdin: bool = False
    join_ipc: bool = False
    #: snapshot/image modes: where the debug image's /bin is mounted inside the throwaway container.
    tools_mount: str = "/.distrodebug"
    #: Kubernetes: the debug container's securityContext, as the profile made it, and the profile.
    security_context: Mapping[str, Any] | None = None
    profile: str = ""


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
