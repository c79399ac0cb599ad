"""The core/v1 Event a debug session leaves on its pod, so the cluster's own history shows it.

Pure: the Event is a function of the pod, the container, the words and the time. It names the
pod with its UID (a pod recreated under the same name is another pod), reason ``Debugged``,
type Normal, and ``distrodebug`` as the reporting component, as ``kubectl describe pod`` and
``kubectl get events`` show it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

COMPONENT = "distrodebug"
REASON = "Debugged"
#: The API server keeps messages whole, but events.k8s.io clients cut them at 1 KiB.
MAX_MESSAGE = 1024


def debugged(pod: Mapping[str, Any], container: str, message: str, host: str,
             time: str) -> dict[str, Any]:
    """The Event for a session on ``container`` of ``pod`` (``time``: RFC 3339, seconds, UTC)."""
    meta = pod.get("metadata") or {}
    name, namespace = str(meta.get("name", "")), str(meta.get("namespace", ""))
    involved: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod", "name": name,
                                "namespace": namespace, "uid": meta.get("uid", "")}
    if container:
        involved["fieldPath"] = f"spec.containers{{{container}}}"
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{name[:200].rstrip('-.')}.distrodebug-", "namespace": namespace},
        "involvedObject": involved,
        "reason": REASON,
        "message": message[:MAX_MESSAGE],
        "type": "Normal",
        "source": {"component": COMPONENT, "host": host[:253]},
        "reportingComponent": COMPONENT,
        "reportingInstance": host[:128],
        "firstTimestamp": time,
        "lastTimestamp": time,
        "count": 1,
    }
