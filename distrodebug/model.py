"""The records every layer shares: what we know of a target, what a sidecar is made of, and with
what privilege. Plain frozen data, no behaviour beyond small derived properties; importing this
module imports nothing else of ours but the target reference."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

#: Seconds to wait for a sidecar, debugger or pod copy to start, unless the user says otherwise.
DEFAULT_TIMEOUT = 120.0

Mode = Literal["join", "snapshot", "image", "node"]
#: stdout and stderr channel numbers, as Docker's stream header and Kubernetes' channels use them.
STDOUT, STDERR = 1, 2


class Answer(str):
    """A session note that --quiet does not silence: the answer to what was asked (how to reach
    a debugger started with --attach=false), not information about the way there."""


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
    #: The runtime's ID of the target container (containerd's on Kubernetes): the sidecar finds
    #: the target's processes by it when PID 1 is not the target (shared PID namespaces, hostPID).
    container_id: str = ""

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
    #: Raw values the labels hold in a safe form (Kubernetes annotations; Docker labels).
    annotations: Mapping[str, str] = field(default_factory=dict)
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
    #: Capabilities to drop ("ALL" first when only cap_add is kept), no-new-privileges, a pids
    #: limit: set for the sidecars of cp and dump, which need far less than a shell.
    cap_drop: tuple[str, ...] = ()
    no_new_privileges: bool = False
    pids_limit: int | None = None
    #: Bytes of memory the sidecar may use (cp and dump jobs: tar and a shell need little).
    memory_limit: int | None = None
    #: What the user asked of this session (profile, copy, reuse, keep...), for the runtime.
    options: DebugOptions = field(default_factory=lambda: DebugOptions())



#: "chroot": the session runs inside the target's root with the sidecar's tools on PATH.
#: "proc": the session stays in the sidecar; the target's root is at /proc/<pid>/root.
View = Literal["chroot", "proc"]


@dataclass(frozen=True)
class Privileges:
    user: str
    cap_add: tuple[str, ...]
    privileged: bool
    view: View
    reason: str
    #: Kubernetes: the debug container's securityContext and the profile that made it.
    security_context: Mapping[str, Any] | None = None
    profile: str = ""
    #: See SidecarSpec: what a cp or dump sidecar gives up.
    cap_drop: tuple[str, ...] = ()
    no_new_privileges: bool = False
    pids_limit: int | None = None
    #: Bytes of memory the sidecar may use (cp and dump jobs: tar and a shell need little).
    memory_limit: int | None = None

    def describe(self) -> str:
        """A few words for the banner: 'root +SYS_PTRACE', 'uid 65532', 'privileged'."""
        if self.profile:
            who = f"uid {self.user}" if self.user else "the image's user"
            caps = "".join(f" +{cap}" for cap in self.cap_add)
            return f"profile {self.profile}, {who}{caps}{' privileged' if self.privileged else ''}"
        if self.privileged:
            return "privileged"
        who = "root" if is_root_user(self.user) else f"user {self.user}"
        caps = "".join(f" +{cap}" for cap in self.cap_add)
        return f"{who}{caps}"




@dataclass(frozen=True)
class DebugOptions:
    """What the user asked of one debug session, beyond the target and the command.

    Options a runtime does not know are refused by the command line before anything is sent
    (``--profile`` on a Docker container, ``--cap-add`` names are normalised by each runtime).
    """

    user: str | None = None
    cap_add: tuple[str, ...] = ()
    privileged: bool = False
    #: Kubernetes: auto, general, baseline, restricted, netadmin, sysadmin.
    profile: str = "auto"
    #: Kubernetes: reuse a running debugger of ours for a shell.
    reuse: bool = False
    #: Kubernetes: debug a copy of the pod instead of joining it.
    copy: bool = False
    #: Kubernetes: keep the copy or node pod when the session ends.
    keep: bool = False
    #: Kubernetes copy: container name (or "*") -> image.
    set_image: Mapping[str, str] = field(default_factory=dict)
    timeout: float = DEFAULT_TIMEOUT
    #: Kubernetes, as kubectl debug's flags of the same names.
    env: tuple[tuple[str, str], ...] = ()
    quiet: bool = False
    #: False: start the debugger and print how to attach, like kubectl's --attach=false.
    attach: bool = True
    same_node: bool = False
    #: None: the profile decides (copies always share processes unless told otherwise).
    share_processes: bool | None = None
    keep_labels: bool = False
    keep_annotations: bool = False
    keep_liveness: bool = False
    keep_readiness: bool = False
    keep_startup: bool = False
    keep_init_containers: bool = True
    #: Delete the original pod once its copy exists (kubectl's --replace).
    replace: bool = False
    #: A partial container spec merged into the debug container (kubectl's --custom).
    custom: Mapping[str, Any] | None = None
    #: Copies: mount the volumes the copy shares with the original read-write (default: read-only).
    writable_volumes: bool = False
    #: Kubernetes: seconds an exec debugger waits with nothing run in it before it exits, and how
    #: many debuggers of ours a pod may hold (ephemeral containers are never removed).
    debugger_idle: int = 600
    max_debuggers: int = 16
    #: Docker: seconds a warm sidecar (runtimes/docker/warm.py) waits unused; 0: none.
    warm_idle: int = 60

    @property
    def wants_copy(self) -> bool:
        return self.copy or bool(self.set_image)


@dataclass(frozen=True)
class DumpMeta:
    """What a runtime knows about a target beyond its files, for a dump bundle."""

    #: Who the target is: runtime, IDs, image, user... (the bundle's "target" record).
    identity: Mapping[str, Any]
    #: Bundle members under meta/: file name -> JSON-able value or text.
    members: Mapping[str, Any]
    #: Path -> added/changed/deleted against the image, where the runtime can tell.
    changes: Mapping[str, str] | None = None


#: Bundle meta members written from a :class:`RuntimeState`.
STATE_MEMBER = "runtime-state.json"
LOGS_MEMBER = "logs.txt"
PREVIOUS_LOGS_MEMBER = "logs.previous.txt"


@dataclass(frozen=True)
class RuntimeState:
    """What the runtime says about a target now and lately: its state, events and logs.

    Volatile, so a dump reads it first: a pod's events expire (an hour by default), logs rotate,
    a restart replaces the previous run's logs, and a debug sidecar's own arrival adds events.
    Times are UTC ISO 8601 (:mod:`distrodebug.clock`). ``events`` are normalised records::

        {"time", "first", "count", "type", "reason", "message", "source", "object"}

    ``logs`` and ``previous_logs`` are the container's output with a timestamp at the start of
    every line (Docker's and the kubelet's RFC 3339 form), the newest part when there was more.
    """

    #: When it was read.
    captured: str
    #: Status, start/finish times, exit code, restart count, health or conditions.
    state: Mapping[str, Any]
    events: tuple[Mapping[str, Any], ...] = ()
    #: None: nothing that could have logs (a plain image).
    logs: str | None = ""
    #: The run before the last restart (Kubernetes keeps one), None when there was none.
    previous_logs: str | None = None
    #: What was cut or could not be read, for the reader of the bundle.
    notes: tuple[str, ...] = ()
    #: Runtime-native records kept as they came (the pod's raw events), by member name.
    raw: Mapping[str, Any] = field(default_factory=dict)

    def members(self) -> dict[str, Any]:
        """The bundle meta members: runtime-state.json, logs.txt, logs.previous.txt and ``raw``."""
        record = {"captured": self.captured, "state": dict(self.state),
                  "events": [dict(e) for e in self.events], "notes": list(self.notes),
                  "logs": LOGS_MEMBER if self.logs is not None else None, "previous_logs":
                  PREVIOUS_LOGS_MEMBER if self.previous_logs is not None else None}
        out: dict[str, Any] = {**self.raw, STATE_MEMBER: record}
        if self.logs is not None:
            out[LOGS_MEMBER] = self.logs
        if self.previous_logs is not None:
            out[PREVIOUS_LOGS_MEMBER] = self.previous_logs
        return out


@dataclass(frozen=True)
class OwnedObject:
    """Something distrodebug created (a container, image, volume or pod), found by its labels."""

    kind: str
    id: str
    name: str
    state: str
    labels: Mapping[str, str]


@dataclass(frozen=True)
class RelaySpec:
    """A port relay: a sidecar in the target's network namespace, nothing else shared, no
    capability, an unprivileged user; each forwarded connection runs ``connect_argv + (port,)``
    in it, a process that joins its stdin and stdout to ``127.0.0.1:port``."""

    image: str
    target_id: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str] = field(default_factory=dict)
    #: What the relay runs while it waits; it must end when its stdin closes (we died).
    idle_argv: tuple[str, ...] = ("sh", "-c", "read -r _")
    connect_argv: tuple[str, ...] = ("nc", "127.0.0.1")
    user: str = "65534:65534"
