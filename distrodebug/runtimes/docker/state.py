"""Pure readers of a container's volatile state as Docker reports it (inspect, events)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from distrodebug.clock import from_epoch, iso, iso_or_none, parse_time

#: Event attributes worth showing beside the action (the rest are labels).
_EVENT_DETAILS = ("exitCode", "signal", "execID", "health_status")
_HEALTH_OUTPUT = 400


def container_state(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Status, times, exit, restarts and health checks from ``docker inspect``."""
    st = raw.get("State") or {}
    health = st.get("Health") or None
    out: dict[str, Any] = {
        "status": st.get("Status"),
        "created": iso_or_none(raw.get("Created")),
        "started_at": iso_or_none(st.get("StartedAt")),
        "finished_at": iso_or_none(st.get("FinishedAt")),
        "exit_code": st.get("ExitCode"),
        "oom_killed": st.get("OOMKilled"),
        "error": st.get("Error") or None,
        "restart_count": raw.get("RestartCount"),
        "restart_policy": ((raw.get("HostConfig") or {}).get("RestartPolicy") or {}).get("Name"),
        "health": None,
    }
    if isinstance(health, Mapping):
        out["health"] = {
            "status": health.get("Status"),
            "failing_streak": health.get("FailingStreak"),
            "log": [
                {"start": iso_or_none(h.get("Start")), "end": iso_or_none(h.get("End")),
                 "exit_code": h.get("ExitCode"), "output": str(h.get("Output") or "")[:_HEALTH_OUTPUT]}
                for h in health.get("Log") or [] if isinstance(h, Mapping)
            ],
        }
    return out


def engine_event(event: Mapping[str, Any]) -> dict[str, Any] | None:
    """One ``docker events`` record as a normalised event, or None when it has no time."""
    nano = event.get("timeNano")
    moment = from_epoch(nano / 1e9) if isinstance(nano, int) else None
    if moment is None and isinstance(event.get("time"), int):
        moment = from_epoch(float(event["time"]))
    if moment is None:
        return None
    actor = event.get("Actor") or {}
    attrs = actor.get("Attributes") or {}
    action = str(event.get("Action") or event.get("status") or "").strip()
    details = ", ".join(f"{k}={attrs[k]}" for k in _EVENT_DETAILS if k in attrs)
    return {
        "time": iso(moment), "first": None, "count": 1, "type": "Normal",
        "reason": action.split(":", 1)[0], "message": action + (f" ({details})" if details else ""),
        "source": "docker", "object": str(event.get("Type") or "container"),
    }


def state_events(state: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The times in the container's state as events: created, started, finished, health checks."""
    out: list[dict[str, Any]] = []

    def add(time: Any, reason: str, message: str, kind: str = "Normal") -> None:
        if time:
            out.append({"time": time, "first": None, "count": 1, "type": kind, "reason": reason,
                        "message": message, "source": "docker inspect", "object": "container"})

    add(state.get("created"), "Created", "container created")
    add(state.get("started_at"), "Started",
        f"container (last) started; restarts so far: {state.get('restart_count') or 0}")
    if state.get("status") != "running" or state.get("restart_count"):
        oom = ", out of memory" if state.get("oom_killed") else ""
        add(state.get("finished_at"), "Finished",
            f"container (last) exited with status {state.get('exit_code')}{oom}",
            "Warning" if state.get("exit_code") or state.get("oom_killed") else "Normal")
    for check in (state.get("health") or {}).get("log") or []:
        failed = check.get("exit_code") not in (0, None)
        add(check.get("start"), "HealthCheck",
            f"health check exited {check.get('exit_code')}: {check.get('output', '').strip()[:200]}",
            "Warning" if failed else "Normal")
    return out


_SAME = {"Created": "create", "Started": "start", "Finished": "die"}


def merge_events(inspected: list[dict[str, Any]], engine: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Both lists, leaving out an inspect-derived event the engine reported too
    (its record says more: exit codes, signals); the engine forgets, inspect does not."""
    def near(a: Any, b: Any) -> bool:
        ta, tb = parse_time(a), parse_time(b)
        return ta is not None and tb is not None and abs((ta - tb).total_seconds()) < 2

    kept = [e for e in inspected
            if not any(x["reason"] == _SAME.get(e["reason"]) and near(x["time"], e["time"])
                       for x in engine)]
    return kept + engine  # the caller orders them (volatile.newest_events)
