"""Discovery documents, the resource table, and server-side printing (`Table`) for kubectl get.

Discovery is served in the legacy (unaggregated) form; clients that ask for aggregated discovery
see a plain `application/json` answer and fall back, as they do against older servers.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]


@dataclass(frozen=True)
class Resource:
    name: str
    kind: str
    namespaced: bool
    verbs: tuple[str, ...]
    group: str = ""
    version: str = "v1"
    short: tuple[str, ...] = ()
    subresources: dict[str, tuple[str, str, tuple[str, ...]]] = field(default_factory=dict)


RW = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
RESOURCES: dict[tuple[str, str], Resource] = {
    (r.group, r.name): r
    for r in (
        Resource(
            "pods", "Pod", True, RW, short=("po",),
            subresources={
                "attach": ("PodAttachOptions", "", ("create", "get")),
                "exec": ("PodExecOptions", "", ("create", "get")),
                "log": ("Pod", "", ("get",)),
                "ephemeralcontainers": ("Pod", "", ("get", "patch", "update")),
                "status": ("Pod", "", ("get", "patch", "update")),
            },
        ),
        Resource("namespaces", "Namespace", False, ("create", "delete", "get", "list", "patch",
                                                    "update", "watch"), short=("ns",)),
        Resource("nodes", "Node", False, RW, short=("no",)),
        Resource("events", "Event", True, RW, short=("ev",)),
        Resource("deployments", "Deployment", True, RW, group="apps", short=("deploy",)),
        Resource("replicasets", "ReplicaSet", True, RW, group="apps", short=("rs",)),
        Resource("selfsubjectaccessreviews", "SelfSubjectAccessReview", False, ("create",),
                 group="authorization.k8s.io"),
    )
}
GROUPS = {"apps": "v1", "authorization.k8s.io": "v1"}


def version_info(git_version: str) -> Obj:
    core = git_version.lstrip("v").split("-")[0].split("+")[0]
    major, minor = (core.split(".") + ["0", "0"])[:2]
    return {
        "major": major, "minor": minor, "gitVersion": git_version,
        "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
        "buildDate": "2024-01-01T00:00:00Z", "goVersion": "go1.22.0", "compiler": "gc",
        "platform": "linux/amd64",
    }


def api_versions(host: str) -> Obj:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}]}


def api_groups() -> Obj:
    groups = []
    for name, version in GROUPS.items():
        gv = {"groupVersion": f"{name}/{version}", "version": version}
        groups.append({"name": name, "versions": [gv], "preferredVersion": gv})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def resource_list(group: str, version: str, ephemeral: bool) -> Obj | None:
    if (group and GROUPS.get(group) != version) or (not group and version != "v1"):
        return None
    entries: list[Obj] = []
    for r in RESOURCES.values():
        if r.group != group:
            continue
        entry = {"name": r.name, "singularName": r.kind.lower(), "namespaced": r.namespaced,
                 "kind": r.kind, "verbs": list(r.verbs)}
        if r.short:
            entry["shortNames"] = list(r.short)
        if r.name in ("pods", "deployments", "replicasets"):
            entry["categories"] = ["all"]
        entries.append(entry)
        for sub, (kind, _group, verbs) in r.subresources.items():
            if sub == "ephemeralcontainers" and not ephemeral:
                continue
            entries.append({"name": f"{r.name}/{sub}", "singularName": "",
                            "namespaced": r.namespaced, "kind": kind, "verbs": list(verbs)})
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": entries}


def find_resource(group: str, name: str) -> Resource | None:
    return RESOURCES.get((group, name))


# --- Table (server-side printing) ----------------------------------------------------------


def parse_time(stamp: str | None) -> dt.datetime | None:
    if not stamp:
        return None
    return dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def human_age(stamp: str | None) -> str:
    """apimachinery's duration.HumanDuration, abbreviated."""
    when = parse_time(stamp)
    if when is None:
        return "<unknown>"
    secs = int((dt.datetime.now(dt.UTC) - when).total_seconds())
    if secs < 0:
        return "0s"
    if secs < 120:
        return f"{secs}s"
    mins = secs // 60
    if mins < 10:
        return f"{mins}m{secs % 60}s" if secs % 60 else f"{mins}m"
    if mins < 180:
        return f"{mins}m"
    hours = mins // 60
    if hours < 8 and mins % 60:
        return f"{hours}h{mins % 60}m"
    return f"{hours}h" if hours < 48 else f"{hours // 24}d"


def pod_status_text(pod: Obj) -> tuple[str, int, int, int]:
    """(STATUS, ready, total, restarts) the way kubectl's printPod computes them."""
    status = pod.get("status") or {}
    reason = status.get("reason") or status.get("phase") or "Pending"
    restarts = ready = 0
    statuses = status.get("containerStatuses") or []
    for i, cs in enumerate(status.get("initContainerStatuses") or []):
        restarts += cs.get("restartCount", 0)
        state = cs.get("state") or {}
        term, wait = state.get("terminated"), state.get("waiting")
        if term and term.get("exitCode") == 0:
            continue
        if term:
            reason = "Init:" + (term.get("reason") or f"ExitCode:{term.get('exitCode')}")
        elif wait and wait.get("reason") and wait["reason"] != "PodInitializing":
            reason = "Init:" + wait["reason"]
        else:
            reason = f"Init:{i}/{len(pod['spec'].get('initContainers') or [])}"
        break
    else:
        for cs in reversed(statuses):
            restarts += cs.get("restartCount", 0)
            state = cs.get("state") or {}
            if (state.get("waiting") or {}).get("reason"):
                reason = state["waiting"]["reason"]
            elif (state.get("terminated") or {}).get("reason"):
                reason = state["terminated"]["reason"]
            elif state.get("running") and cs.get("ready"):
                ready += 1
        if reason == "Completed" and any((cs.get("state") or {}).get("running") for cs in statuses):
            reason = "Running"
    if pod.get("metadata", {}).get("deletionTimestamp"):
        reason = "Terminating"
    return reason, ready, len(pod.get("spec", {}).get("containers") or []), restarts


def _column(name: str, description: str, priority: int = 0, fmt: str = "") -> Obj:
    return {"name": name, "type": "string", "format": fmt, "description": description,
            "priority": priority}


def _partial(obj: Obj, include: str) -> Obj:
    if include == "Object":
        return obj
    if include == "None":
        return {}
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata", {})}


def to_table(resource: str, items: list[Obj], rv: str, include: str) -> Obj:
    name_col = _column("Name", "Name must be unique within a namespace.", fmt="name")
    age_col = _column("Age", "CreationTimestamp is a timestamp representing the server time when "
                             "this object was created.")
    rows: list[Obj] = []
    if resource == "pods":
        columns = [name_col, _column("Ready", "The aggregate readiness state of this pod."),
                   _column("Status", "The aggregate status of the containers in this pod."),
                   _column("Restarts", "The number of times the containers in this pod have "
                                       "been restarted."),
                   age_col, _column("IP", "IP address allocated to the pod.", 1),
                   _column("Node", "Name of the node this pod is scheduled on.", 1),
                   _column("Nominated Node", "Nominated node name.", 1),
                   _column("Readiness Gates", "Pod readiness gates.", 1)]
        for pod in items:
            text, ready, total, restarts = pod_status_text(pod)
            cells = [pod["metadata"]["name"], f"{ready}/{total}", text, str(restarts),
                     human_age(pod["metadata"].get("creationTimestamp")),
                     (pod.get("status") or {}).get("podIP") or "<none>",
                     pod["spec"].get("nodeName") or "<none>", "<none>", "<none>"]
            rows.append({"cells": cells, "object": _partial(pod, include)})
    elif resource == "nodes":
        columns = [name_col, _column("Status", "The status of the node"),
                   _column("Roles", "The roles of the node"), age_col,
                   _column("Version", "Kubelet Version reported by the node.")]
        for node in items:
            cells = [node["metadata"]["name"], "Ready", "<none>",
                     human_age(node["metadata"].get("creationTimestamp")),
                     node["status"]["nodeInfo"]["kubeletVersion"]]
            rows.append({"cells": cells, "object": _partial(node, include)})
    else:
        columns = [name_col, age_col]
        for obj in items:
            cells = [obj["metadata"]["name"], human_age(obj["metadata"].get("creationTimestamp"))]
            rows.append({"cells": cells, "object": _partial(obj, include)})
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": rv},
            "columnDefinitions": columns, "rows": rows}


def wants_table(accept: str) -> bool:
    return "as=Table" in accept
