"""Pod status as the kubelet reports it: container states, phase, conditions; and scheduling.

Kept apart from the Docker side so the rules (getPhase, conditions, CrashLoopBackOff text,
taint toleration) read like their kubelet and scheduler counterparts.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def waiting(reason: str, message: str = "") -> Obj:
    state: Obj = {"reason": reason}
    if message:
        state["message"] = message
    return {"waiting": state}


@dataclass
class Tracked:
    """What the kubelet knows about one container of a pod."""

    name: str
    kind: str  # "init" | "app" | "ephemeral"
    image: str = ""
    state: Obj = field(default_factory=lambda: waiting("ContainerCreating"))
    last_state: Obj = field(default_factory=dict)
    restart_count: int = 0
    docker_id: str | None = None
    previous_id: str | None = None
    image_id: str = ""
    started: bool = False
    retry_at: float = 0.0
    crashes: int = 0
    pull_failures: int = 0
    attempts: int = 0  # docker containers created so far (name suffix)
    finished: bool = False  # will never run again

    @property
    def running(self) -> bool:
        return "running" in self.state

    @property
    def terminated(self) -> Obj | None:
        return self.state.get("terminated")

    def status(self) -> Obj:
        out: Obj = {
            "name": self.name,
            "state": self.state,
            "lastState": self.last_state,
            "ready": self.running and self.kind == "app",
            "restartCount": self.restart_count,
            "image": self.image,
            "imageID": self.image_id,
        }
        if self.docker_id:
            out["containerID"] = f"docker://{self.docker_id}"
        if self.kind != "ephemeral":
            out["started"] = self.running
        return out


def terminated_state(exit_code: int, started: str, finished: str, docker_id: str,
                     reason: str | None = None, message: str = "") -> Obj:
    state: Obj = {
        "exitCode": exit_code,
        "reason": reason or ("Completed" if exit_code == 0 else "Error"),
        "startedAt": started,
        "finishedAt": finished,
        "containerID": f"docker://{docker_id}",
    }
    if message:
        state["message"] = message
    return {"terminated": state}


def should_restart(kind: str, policy: str, exit_code: int) -> bool:
    if kind == "ephemeral":
        return False
    if kind == "init":
        return policy != "Never" and exit_code != 0
    return policy == "Always" or (policy == "OnFailure" and exit_code != 0)


def phase(pod: Obj, init: list[Tracked], apps: list[Tracked]) -> str:
    """The kubelet's getPhase (ephemeral containers never count)."""
    policy = pod["spec"].get("restartPolicy", "Always")
    for t in init:
        term = t.terminated
        if term and term["exitCode"] != 0 and policy == "Never":
            return "Failed"
        if not (term and term["exitCode"] == 0):
            return "Pending"
    running = waiting_n = stopped = succeeded = 0
    for t in apps:
        if t.running:
            running += 1
        elif t.terminated:
            stopped += 1
            succeeded += t.terminated["exitCode"] == 0
        elif t.last_state.get("terminated"):
            stopped += 1
        else:
            waiting_n += 1
    if waiting_n:
        return "Pending"
    if running:
        return "Running"
    if stopped:
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        return "Failed" if policy == "Never" else "Running"
    return "Pending"


class Conditions:
    """Pod conditions with transition times that only move when the status flips."""

    def __init__(self) -> None:
        self.since: dict[str, tuple[str, str]] = {}

    def make(self, ctype: str, ok: bool, reason: str = "", message: str = "") -> Obj:
        status = "True" if ok else "False"
        prev = self.since.get(ctype)
        if prev is None or prev[0] != status:
            self.since[ctype] = (status, now())
        cond: Obj = {"type": ctype, "status": status, "lastProbeTime": None,
                     "lastTransitionTime": self.since[ctype][1]}
        if reason and not ok:
            cond["reason"] = reason
        if message and not ok:
            cond["message"] = message
        return cond

    def all(self, sandbox: bool, init_done: bool, apps: list[Tracked], pod_phase: str) -> list[Obj]:
        unready = [t.name for t in apps if not t.running]
        completed = pod_phase in ("Succeeded", "Failed")
        reason = "PodCompleted" if completed else "ContainersNotReady"
        message = "" if completed else f"containers with unready status: [{' '.join(unready)}]"
        return [
            self.make("PodReadyToStartContainers", sandbox),
            self.make("Initialized", init_done, "ContainersNotInitialized"),
            self.make("Ready", not unready, reason, message),
            self.make("ContainersReady", not unready, reason, message),
            self.make("PodScheduled", True),
        ]


def tolerates(tolerations: list[Obj], taint: Obj) -> bool:
    for t in tolerations:
        if t.get("effect") and t["effect"] != taint.get("effect"):
            continue
        if t.get("operator") == "Exists":
            if not t.get("key") or t["key"] == taint.get("key"):
                return True
        elif t.get("key") == taint.get("key") and t.get("value", "") == taint.get("value", ""):
            return True
    return False


def unschedulable_message(pod: Obj, node: Obj) -> str | None:
    """The scheduler's message when the only node's taints are not tolerated, else None."""
    tolerations = pod["spec"].get("tolerations") or []
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(tolerations, taint):
            shown = f"{taint['key']}: {taint['value']}" if taint.get("value") else taint["key"]
            return (f"0/1 nodes are available: 1 node(s) had untolerated taint {{{shown}}}. "
                    "preemption: 0/1 nodes are available: 1 Preemption is not helpful for "
                    "scheduling.")
    return None
