"""What we send to a Kubernetes cluster, as plain data: pure functions, no client import."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from distrodebug.errors import NoSuchTarget
from distrodebug.model import SidecarSpec

#: kubectl's alphabet for generated names: no vowels, no 0/1/3.
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def debugger_name(existing: set[str], rng: random.Random | None = None) -> str:
    """A fresh 'distrodebug-xxxxx' name not used by any container of the pod."""
    rng = rng or random.Random()
    while True:
        name = "distrodebug-" + "".join(rng.choice(NAME_ALPHABET) for _ in range(5))
        if name not in existing:
            return name


def ephemeral_container(spec: SidecarSpec, name: str, target_container: str,
                        security_context: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ephemeral container we add; the same keys kubectl sends, plus our entry script."""
    body: dict[str, Any] = {
        "name": name,
        "image": spec.image,
        "command": list(spec.argv),
        "env": [{"name": k, "value": v} for k, v in spec.env.items()],
        "resources": {},
        "targetContainerName": target_container,
        "terminationMessagePolicy": "File",
    }
    if spec.stdin:
        body.update(stdin=True, stdinOnce=True)
    if spec.tty:
        body["tty"] = True
    if security_context:
        body["securityContext"] = dict(security_context)
    return body


def all_names(pod: Mapping[str, Any]) -> set[str]:
    spec = pod.get("spec") or {}
    return {c["name"] for key in ("containers", "initContainers", "ephemeralContainers")
            for c in spec.get(key) or []}


def container_status(pod: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    status = pod.get("status") or {}
    for key in ("ephemeralContainerStatuses", "containerStatuses", "initContainerStatuses"):
        for item in status.get(key) or []:
            if item.get("name") == name:
                found: Mapping[str, Any] = item
                return found
    return None


def pick_container(pod: Mapping[str, Any], wanted: str | None) -> tuple[str, str]:
    """The container to debug and how it was chosen (kubectl's rules)."""
    containers = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
    pod_name = pod["metadata"]["name"]
    if wanted:
        if wanted not in containers:
            raise NoSuchTarget(f"Pod '{pod_name}' has no container '{wanted}'.",
                               f"Its containers: {', '.join(containers)}.")
        return wanted, ""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    default = annotations.get("kubectl.kubernetes.io/default-container")
    if isinstance(default, str) and default in containers:
        return default, f"targeting container '{default}' (the pod's default-container annotation)"
    if len(containers) == 1:
        return containers[0], ""
    return containers[0], (f"targeting container '{containers[0]}', the first of "
                           f"{', '.join(containers)}; choose another with -c")


#: Past this, a script argument travels on stdin instead of in the exec URL, which servers and
#: proxies cap (8 KiB is common).
MAX_URL_SCRIPT = 2048


def long_script_on_stdin(argv: tuple[str, ...] | list[str], stdin_used: bool) -> tuple[list[str], bytes]:
    """Move a long ``sh -c SCRIPT`` out of the exec URL: the shell reads exactly its length from stdin.

    Reading a counted prefix (not up to EOF) works on v4 too, where stdin cannot be half-closed.
    """
    words = list(argv)
    if stdin_used:
        return words, b""
    for i in range(len(words) - 2, -1, -1):
        script = words[i + 1].encode()
        if words[i] == "-c" and len(script) > MAX_URL_SCRIPT:
            words[i + 1] = f'eval "$(head -c {len(script)})"'
            return words, script
    return words, b""


#: A container restarted and up for less than this is taken to be crash-looping, as on Docker.
CRASH_LOOP_UPTIME = 10.0


def container_state(status: Mapping[str, Any], now: float) -> str:
    """running, restarting (a crash loop, even in its brief running moments), exited or created."""
    from datetime import datetime

    state = status.get("state") or {}
    if state.get("running"):
        started = str(state["running"].get("startedAt") or "")
        if int(status.get("restartCount") or 0) > 0 and started:
            try:
                up = now - datetime.fromisoformat(started.replace("Z", "+00:00")).timestamp()
            except ValueError:
                up = CRASH_LOOP_UPTIME
            if up < CRASH_LOOP_UPTIME:
                return "restarting"
        return "running"
    if (state.get("waiting") or {}).get("reason") == "CrashLoopBackOff":
        return "restarting"
    return "exited" if state.get("terminated") else "created"
