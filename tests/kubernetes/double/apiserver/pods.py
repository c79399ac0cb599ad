"""Pods: create (defaulting, validation, Pod Security), graceful delete, restricted updates,
and the subresources ephemeralcontainers, log, status, attach and exec.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import podsecurity, streaming
from .dockerapi import Demux, DockerError
from .http import Ctx, respond
from .listing import list_or_watch
from .patch import apply_patch
from .podstatus import now
from .status import (
    FieldError,
    already_exists,
    bad_request,
    conflict,
    invalid,
    method_not_allowed,
    no_such_route,
    not_found,
)
from .validation import default_container, default_pod, validate_ephemeral_update, validate_pod

if TYPE_CHECKING:
    from .discovery import Resource
    from .double import ApiServerDouble

Obj = dict[str, Any]

UPDATE_RULE = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only "
    "additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set "
    "to 1 if it was previously negative)"
)


def namespace_labels(double: ApiServerDouble, namespace: str) -> dict[str, str]:
    ns = double.store.get("namespaces", "", namespace)
    if ns is None:
        raise not_found("namespaces", namespace)
    return ns["metadata"].get("labels") or {}


def create_pod(double: ApiServerDouble, namespace: str, body: Obj) -> tuple[Obj, list[str]]:
    if body.get("kind") not in (None, "", "Pod"):
        raise bad_request(f"the API version in the data ({body.get('apiVersion')}) does not match "
                          f"the expected API version (v1)")
    pod = copy.deepcopy(body)
    default_pod(pod, namespace, now())
    name = pod["metadata"].get("name", "")
    errors = validate_pod(pod)
    if errors:
        raise invalid("Pod", name, errors)
    labels = namespace_labels(double, namespace)
    warnings = podsecurity.admit(labels, pod)
    if double.store.get("pods", namespace, name) is not None:
        raise already_exists("pods", name)
    return double.store.create("pods", pod), warnings


def delete_pod(double: ApiServerDouble, namespace: str, name: str, grace: int | None,
               preconditions: Obj | None = None) -> Obj:
    pod = double.store.get("pods", namespace, name)
    if pod is None:
        raise not_found("pods", name)
    meta = pod["metadata"]
    for key in ("uid", "resourceVersion"):
        wanted = (preconditions or {}).get(key)
        if wanted and wanted != meta.get(key):
            raise conflict("pods", name)
    if grace is None:
        grace = int(pod["spec"].get("terminationGracePeriodSeconds", 30))
    terminal = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
    if grace <= 0 or not pod["spec"].get("nodeName") or terminal or not double.engine:
        # unscheduled or finished pods, and grace 0, go at once (CheckGracefulDelete)
        gone = double.store.delete("pods", namespace, name)
        assert gone is not None
        return gone
    previous = meta.get("deletionGracePeriodSeconds")
    if previous is not None and previous <= grace:
        return pod
    stamp = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=grace)
    meta["deletionTimestamp"] = stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    meta["deletionGracePeriodSeconds"] = grace
    return double.store.update("pods", pod)


def _update_pod(double: ApiServerDouble, current: Obj, new: Obj) -> Obj:
    """PUT/PATCH of the pod itself: metadata, images, tolerations additions; status untouched."""
    def frozen(spec: Obj) -> Obj:
        spec = copy.deepcopy(spec)
        for key in ("containers", "initContainers"):
            for c in spec.get(key) or []:
                c.pop("image", None)
        spec.pop("activeDeadlineSeconds", None)
        spec.pop("tolerations", None)
        return spec

    name = current["metadata"]["name"]
    if frozen(new.get("spec") or {}) != frozen(current["spec"]):
        raise invalid("Pod", name, [FieldError("Forbidden", "spec", UPDATE_RULE)])
    updated = copy.deepcopy(current)
    updated["spec"] = new["spec"]
    for key in ("labels", "annotations", "finalizers", "ownerReferences"):
        value = (new.get("metadata") or {}).get(key)
        if value is None:
            updated["metadata"].pop(key, None)
        else:
            updated["metadata"][key] = value
    return double.store.update("pods", updated)


def update_ephemeral(double: ApiServerDouble, current: Obj, new: Obj) -> tuple[Obj, list[str]]:
    """The ephemeralcontainers strategy: only spec.ephemeralContainers may change."""
    candidate = copy.deepcopy(current)
    containers = copy.deepcopy((new.get("spec") or {}).get("ephemeralContainers") or [])
    for ec in containers:
        default_container(ec)
    candidate["spec"]["ephemeralContainers"] = containers
    if not containers:
        candidate["spec"].pop("ephemeralContainers")
    errors = validate_ephemeral_update(current, candidate)
    if errors:
        raise invalid("Pod", current["metadata"]["name"], errors)
    if candidate == current:
        return current, []
    warnings = podsecurity.admit(namespace_labels(double, current["metadata"]["namespace"]),
                                 candidate)
    return double.store.update("pods", candidate), warnings


async def ephemeral_containers(ctx: Ctx, pod: Obj) -> web.StreamResponse:
    verb = ctx.info.verb
    if verb == "get":
        return respond(pod)
    if verb == "patch":
        new = apply_patch(ctx.request.headers.get("Content-Type", ""), pod, ctx.body)
    elif verb == "update":
        new = ctx.obj()
        wanted = (new.get("metadata") or {}).get("resourceVersion")
        if wanted and wanted != pod["metadata"]["resourceVersion"]:
            raise conflict("pods", pod["metadata"]["name"])
    else:
        raise method_not_allowed()
    updated, warnings = update_ephemeral(ctx.double, pod, new)
    return respond(updated, 200, warnings)


def pick_container(pod: Obj, wanted: str | None) -> str:
    spec, name = pod["spec"], pod["metadata"]["name"]
    apps = [c["name"] for c in spec.get("containers") or []]
    inits = [c["name"] for c in spec.get("initContainers") or []]
    ephemeral = [c["name"] for c in spec.get("ephemeralContainers") or []]
    if not wanted:
        if len(apps) == 1:
            return str(apps[0])
        message = (f"a container name must be specified for pod {name}, "
                   f"choose one of: [{' '.join(apps)}]")
        if inits:
            message += f" or one of the init containers: [{' '.join(inits)}]"
        if ephemeral:
            message += f" or one of the ephemeral containers: [{' '.join(ephemeral)}]"
        raise bad_request(message)
    if wanted not in apps + inits + ephemeral:
        raise bad_request(f"container {wanted} is not valid for pod {name}")
    return wanted


async def logs(ctx: Ctx, pod: Obj) -> web.StreamResponse:
    double = ctx.double
    name = pod["metadata"]["name"]
    container = pick_container(pod, ctx.query("container"))
    if not double.engine or double.kubelet is None:
        raise bad_request("the API-server double runs without a container engine: no logs")
    tracked = double.kubelet.tracked(pod["metadata"]["namespace"], name, container)
    cid = tracked and (tracked.previous_id if ctx.flag("previous") else tracked.docker_id)
    if tracked is None or not cid:
        if ctx.flag("previous"):
            raise bad_request(
                f'previous terminated container "{container}" in pod "{name}" not found')
        reason = ((tracked.state.get("waiting") if tracked else None) or {}).get(
            "reason", "ContainerCreating")
        raise bad_request(f'container "{container}" in pod "{name}" is waiting to start: {reason}')
    params: Obj = {"stdout": True, "stderr": True, "timestamps": ctx.flag("timestamps"),
                   "tail": ctx.query("tailLines") or "all"}
    if ctx.query("sinceSeconds"):
        since = int(ctx.query("sinceSeconds") or 0)
        params["since"] = int(dt.datetime.now(dt.UTC).timestamp()) - since
    spec = next(c for k in ("containers", "initContainers", "ephemeralContainers")
                for c in pod["spec"].get(k) or [] if c["name"] == container)
    demux = None if spec.get("tty") else Demux()

    def plain(chunk: bytes) -> bytes:
        return chunk if demux is None else b"".join(p for _, p in demux.feed(chunk))

    limit = int(ctx.query("limitBytes") or 0)
    if not ctx.flag("follow"):
        try:
            data = await double.docker.request("GET", f"/containers/{cid}/logs", params=params)
        except DockerError as err:
            raise bad_request(err.message) from err
        text = plain(data if isinstance(data, bytes) else json.dumps(data).encode())
        return web.Response(body=text[:limit] if limit else text, content_type="text/plain")
    resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
    await resp.prepare(ctx.request)
    sent = 0
    try:
        follow = dict(params, follow=True)
        async for chunk in double.docker.stream(f"/containers/{cid}/logs", follow):
            out = plain(chunk)
            if limit:
                out = out[: max(0, limit - sent)]
            sent += len(out)
            await resp.write(out)
            if limit and sent >= limit:
                break
    except (ConnectionResetError, DockerError):
        pass
    return resp


def _grace(ctx: Ctx) -> tuple[int | None, Obj | None]:
    opts = ctx.obj() if ctx.body else {}
    grace = opts.get("gracePeriodSeconds")
    if grace is None and ctx.query("gracePeriodSeconds") is not None:
        grace = int(ctx.query("gracePeriodSeconds") or 0)
    return grace, opts.get("preconditions")


async def handle(ctx: Ctx, res: Resource) -> web.StreamResponse:
    info, double = ctx.info, ctx.double
    sub = info.subresource
    if not sub and info.verb in ("list", "watch"):
        return await list_or_watch(ctx, res)
    if not sub and info.verb == "create":
        pod, warnings = create_pod(double, info.namespace, ctx.obj())
        return respond(pod, 201, warnings)
    if sub not in ("", "ephemeralcontainers", "log", "status", "attach", "exec"):
        raise no_such_route()
    if sub == "ephemeralcontainers" and not double.ephemeral_containers:
        raise no_such_route()  # a cluster without the subresource: 404, empty details
    found = double.store.get("pods", info.namespace, info.name)
    if found is None:
        raise not_found("pods", info.name)
    pod = found
    if sub == "ephemeralcontainers":
        return await ephemeral_containers(ctx, pod)
    if sub in ("attach", "exec"):
        return await streaming.serve(ctx, pod, sub)
    if sub == "log":
        return await logs(ctx, pod)
    if info.verb == "get":
        return respond(pod)
    if sub == "status":
        raise method_not_allowed()
    if info.verb == "delete":
        grace, preconditions = _grace(ctx)
        return respond(delete_pod(double, info.namespace, info.name, grace, preconditions))
    if info.verb == "patch":
        new = apply_patch(ctx.request.headers.get("Content-Type", ""), pod, ctx.body)
    elif info.verb == "update":
        new = ctx.obj()
        wanted = (new.get("metadata") or {}).get("resourceVersion")
        if wanted and wanted != pod["metadata"]["resourceVersion"]:
            raise conflict("pods", info.name)
    else:
        raise method_not_allowed()
    return respond(_update_pod(double, pod, new))
