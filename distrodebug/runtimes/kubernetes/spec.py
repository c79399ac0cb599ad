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


def request_hash(container: Mapping[str, Any]) -> str:
    """What an idle debugger was made for: image, securityContext, target, entry scripts, env.

    Two requests with the same hash may share a debugger; anything else gets its own (a debugger
    made for container `app` runs in app's namespaces, never in `sidecar`'s).
    """
    import hashlib
    import json

    made = {key: container.get(key) for key in ("image", "securityContext", "targetContainerName",
                                                "command", "volumeMounts")}
    made["env"] = sorted((e["name"], e.get("value", "")) for e in container.get("env") or []
                         if e["name"] not in ("TERM", "DD_REQUEST"))
    return hashlib.sha256(json.dumps(made, sort_keys=True).encode()).hexdigest()[:16]


def env_value(container: Mapping[str, Any], name: str) -> str | None:
    for item in container.get("env") or []:
        if item.get("name") == name:
            return str(item.get("value", ""))
    return None


#: Fields kubectl's --custom may not set: they are what makes the debugger ours.
CUSTOM_FORBIDDEN = ("name", "command", "image", "lifecycle", "volumeDevices")
#: List fields merged by a key, as a strategic merge patch of a Container merges them.
_MERGE_KEYS = {"env": "name", "volumeMounts": "mountPath", "ports": "containerPort",
               "envFrom": None}


def merge_custom(container: Mapping[str, Any], custom: Mapping[str, Any]) -> dict[str, Any]:
    """kubectl debug's --custom: a partial Container merged into ours, key by key.

    Mappings merge recursively, env and volumeMounts by their merge keys (as a strategic merge
    patch does), other lists and values are replaced.
    """
    bad = [key for key in CUSTOM_FORBIDDEN if key in custom]
    if bad:
        from distrodebug.errors import UsageError

        raise UsageError(f"--custom may not set {', '.join(bad)}.",
                         "Leave those to distrodebug; set securityContext, env, resources and the like.")
    return _merge(dict(container), custom)


def _merge(base: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in patch.items():
        old = merged.get(key)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            merged[key] = _merge(dict(old), value)
        elif isinstance(value, list) and isinstance(old, list) and _MERGE_KEYS.get(key):
            merge_key = _MERGE_KEYS[key]
            items = {item.get(merge_key): dict(item) for item in old if isinstance(item, Mapping)}
            for item in value:
                if isinstance(item, Mapping):
                    prior = items.get(item.get(merge_key))
                    items[item.get(merge_key)] = _merge(prior, item) if prior else dict(item)
            merged[key] = list(items.values())
        else:
            merged[key] = value
    return merged


def custody_identity(pod: Mapping[str, Any], container: str) -> dict[str, Any]:
    """Who the target is, for a bundle's chain of custody: pod UID, node, owners, the runtime's
    container ID and the image digest the kubelet ran (``imageID``)."""
    meta = pod.get("metadata") or {}
    status = container_status(pod, container) or {}
    image_id = str(status.get("imageID") or "")
    return {
        "pod_uid": meta.get("uid"),
        "node": (pod.get("spec") or {}).get("nodeName"),
        "owners": [{key: ref.get(key) for key in ("kind", "name", "uid", "controller")}
                   for ref in meta.get("ownerReferences") or [] if isinstance(ref, Mapping)],
        "container_id": str(status.get("containerID") or "") or None,
        "image_digest": image_id.rpartition("@")[2] if "@" in image_id else image_id or None,
        "repo_digests": [image_id] if "@" in image_id else [],
    }


def label_selector(selector: dict[str, Any]) -> str:
    """A LabelSelector object (matchLabels and matchExpressions) as the query-string form."""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key", ""), expr.get("operator", ""), expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)
