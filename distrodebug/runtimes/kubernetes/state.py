"""Pure readers of a pod's volatile state: its status, its core/v1 Events, normalised."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from distrodebug.clock import iso_or_none
from distrodebug.runtimes.kubernetes.spec import container_status


def _run(state: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A container state ({"running": ...}, {"terminated": ...}, {"waiting": ...}) flattened."""
    if not state:
        return None
    for kind in ("running", "terminated", "waiting"):
        part = state.get(kind)
        if isinstance(part, Mapping):
            return {"state": kind, "started_at": iso_or_none(part.get("startedAt")),
                    "finished_at": iso_or_none(part.get("finishedAt")),
                    "exit_code": part.get("exitCode"), "signal": part.get("signal"),
                    "reason": part.get("reason"), "message": part.get("message")}
    return None


def pod_state(pod: Mapping[str, Any], container: str) -> dict[str, Any]:
    """The pod's phase, conditions and the target container's status, times in our form."""
    status = pod.get("status") or {}
    mine = container_status(pod, container) or {}
    return {
        "phase": status.get("phase"),
        "reason": status.get("reason"),
        "message": status.get("message"),
        "created": iso_or_none((pod.get("metadata") or {}).get("creationTimestamp")),
        "started_at": iso_or_none(status.get("startTime")),
        "node": (pod.get("spec") or {}).get("nodeName"),
        "conditions": [
            {"type": c.get("type"), "status": c.get("status"),
             "time": iso_or_none(c.get("lastTransitionTime")), "reason": c.get("reason"),
             "message": c.get("message")}
            for c in status.get("conditions") or [] if isinstance(c, Mapping)
        ],
        "container": {
            "name": container, "ready": mine.get("ready"), "started": mine.get("started"),
            "restart_count": int(mine.get("restartCount") or 0),
            "container_id": mine.get("containerID"), "image_id": mine.get("imageID"),
            "current": _run(mine.get("state")), "last": _run(mine.get("lastState")),
        },
    }


def restarted(state: Mapping[str, Any]) -> bool:
    """True when the container ran before the current run: there are previous logs to ask for."""
    container = state.get("container") or {}
    return bool(container.get("restart_count")) or bool(container.get("last"))


def pod_event(event: Mapping[str, Any]) -> dict[str, Any] | None:
    """One core/v1 Event as a normalised event; None when it carries no time at all."""
    series = event.get("series") or {}
    time = (iso_or_none(series.get("lastObservedTime")) or iso_or_none(event.get("lastTimestamp"))
            or iso_or_none(event.get("eventTime"))
            or iso_or_none(event.get("firstTimestamp"))
            or iso_or_none((event.get("metadata") or {}).get("creationTimestamp")))
    if time is None:
        return None
    source = event.get("reportingComponent") or (event.get("source") or {}).get("component") or ""
    involved = event.get("involvedObject") or {}
    first = iso_or_none(event.get("firstTimestamp")) or iso_or_none(event.get("eventTime"))
    return {
        "time": time, "first": first if first != time else None,
        "count": int(event.get("count") or series.get("count") or 1),
        "type": event.get("type") or "Normal", "reason": event.get("reason") or "",
        "message": event.get("message") or "", "source": source,
        "object": involved.get("fieldPath") or f"{involved.get('kind', 'Pod')}/{involved.get('name', '')}",
    }


def state_events(state: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The times in the pod's status as events: conditions, the container's runs."""
    out: list[dict[str, Any]] = []

    def add(time: Any, reason: str, message: str, kind: str = "Normal") -> None:
        if time:
            out.append({"time": time, "first": None, "count": 1, "type": kind, "reason": reason,
                        "message": message, "source": "pod status", "object": "pod"})

    add(state.get("created"), "Created", "pod object created")
    for cond in state.get("conditions") or []:
        add(cond.get("time"), f"Condition{cond.get('type')}",
            f"{cond.get('type')} became {cond.get('status')}"
            + (f" ({cond.get('reason')})" if cond.get("reason") else ""),
            "Normal" if cond.get("status") == "True" else "Warning")
    container = state.get("container") or {}
    name = container.get("name")
    for which in ("last", "current"):
        run = container.get(which) or {}
        add(run.get("started_at"), "ContainerStarted",
            f"container {name} started ({'previous' if which == 'last' else 'current'} run)")
        if run.get("finished_at"):
            failed = run.get("exit_code") not in (0, None)
            add(run.get("finished_at"), "ContainerFinished",
                f"container {name} exited with status {run.get('exit_code')}"
                + (f" ({run.get('reason')})" if run.get("reason") else ""),
                "Warning" if failed else "Normal")
    return out
