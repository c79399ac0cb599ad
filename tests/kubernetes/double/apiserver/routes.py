"""Resource handlers: generic get/list/watch/create/update/patch/delete, plus the small
controllers a debugging tool relies on (namespaces, nodes, events, deployments -> replicasets ->
pods, SelfSubjectAccessReview). Pods live in pods.py.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from aiohttp import web

from . import discovery, pods
from .http import Ctx, respond
from .listing import api_version, list_or_watch
from .patch import apply_patch
from .podstatus import now
from .status import (
    ApiError,
    FieldError,
    already_exists,
    conflict,
    invalid,
    method_not_allowed,
    no_such_route,
    not_found,
)
from .validation import SUBDOMAIN_MSG, SUBDOMAIN_RE, new_uid, rand_suffix

Obj = dict[str, Any]


def _check_name(kind: str, obj: Obj, group: str = "") -> str:
    meta = obj.setdefault("metadata", {})
    if not meta.get("name") and meta.get("generateName"):
        meta["name"] = meta["generateName"] + rand_suffix()
    name = meta.get("name", "")
    if not name:
        raise invalid(kind, "", [FieldError("Required", "metadata.name",
                                            "name or generateName is required")], group)
    if not SUBDOMAIN_RE.match(name):
        raise invalid(kind, name, [FieldError("Invalid", "metadata.name", SUBDOMAIN_MSG, name)],
                      group)
    return str(name)


def new_object(double: Any, res: discovery.Resource, namespace: str, obj: Obj) -> Obj:
    """Create with defaulted metadata; the shared path for API creates and test helpers."""
    name = _check_name(res.kind, obj, res.group)
    if res.namespaced and double.store.get("namespaces", "", namespace) is None:
        raise not_found("namespaces", namespace)
    if double.store.get(res.name, namespace if res.namespaced else "", name) is not None:
        raise already_exists(res.name, name, res.group)
    obj["apiVersion"], obj["kind"] = api_version(res), res.kind
    meta = obj["metadata"]
    meta.update(uid=new_uid(), creationTimestamp=now())
    meta.pop("resourceVersion", None)
    if res.namespaced:
        meta["namespace"] = namespace
    else:
        meta.pop("namespace", None)
    if res.name == "namespaces":
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = name
        obj["spec"] = {"finalizers": ["kubernetes"]}
        obj["status"] = {"phase": "Active"}
    created = double.store.create(res.name, obj)
    if res.name == "deployments":
        _deployment_controller(double, created)
    elif res.name == "replicasets":
        _replicaset_controller(double, created)
    return created  # type: ignore[no-any-return]


def _owner(obj: Obj) -> Obj:
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def _deployment_controller(double: Any, deploy: Obj) -> None:
    """Create the ReplicaSet once (no rollouts, no scaling: enough to resolve deploy/NAME)."""
    spec = deploy.get("spec") or {}
    template = json.loads(json.dumps(spec.get("template") or {}))
    pod_hash = "".join(secrets.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(10))
    template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = pod_hash
    selector = json.loads(json.dumps(spec.get("selector") or {}))
    selector.setdefault("matchLabels", {})["pod-template-hash"] = pod_hash
    rs = {"metadata": {"name": f"{deploy['metadata']['name']}-{pod_hash}",
                       "labels": template["metadata"]["labels"],
                       "ownerReferences": [_owner(deploy)]},
          "spec": {"replicas": spec.get("replicas", 1), "selector": selector,
                   "template": template}}
    new_object(double, discovery.RESOURCES[("apps", "replicasets")],
               deploy["metadata"]["namespace"], rs)
    replicas = spec.get("replicas", 1)
    deploy["status"] = {"observedGeneration": 1, "replicas": replicas,
                        "updatedReplicas": replicas, "readyReplicas": replicas,
                        "availableReplicas": replicas}
    double.store.update("deployments", deploy)


def _replicaset_controller(double: Any, rs: Obj) -> None:
    spec = rs.get("spec") or {}
    for _ in range(spec.get("replicas", 1)):
        template = json.loads(json.dumps(spec.get("template") or {}))
        pod = {"metadata": dict(template.get("metadata") or {},
                                name=f"{rs['metadata']['name']}-{rand_suffix()}",
                                ownerReferences=[_owner(rs)]),
               "spec": template.get("spec") or {}}
        try:
            pods.create_pod(double, rs["metadata"]["namespace"], pod)
        except ApiError as err:
            double.record_event(rs, "FailedCreate", f"Error creating: {err.message}", "Warning")
    rs["status"] = {"replicas": spec.get("replicas", 1), "observedGeneration": 1}
    double.store.update("replicasets", rs)


def _keep_identity(current: Obj, new: Obj) -> Obj:
    meta = new.setdefault("metadata", {})
    for key in ("uid", "creationTimestamp", "namespace", "name"):
        if key in current["metadata"]:
            meta[key] = current["metadata"][key]
    new["apiVersion"], new["kind"] = current.get("apiVersion"), current.get("kind")
    return new


async def generic(ctx: Ctx, res: discovery.Resource) -> web.StreamResponse:
    info, store = ctx.info, ctx.double.store
    ns = info.namespace if res.namespaced else ""
    if info.subresource:
        raise no_such_route()
    if info.verb in ("list", "watch"):
        return await list_or_watch(ctx, res)
    if info.verb == "create":
        if info.name:
            raise method_not_allowed()
        return respond(new_object(ctx.double, res, ns, ctx.obj()), 201)
    current = store.get(res.name, ns, info.name)
    if current is None:
        raise not_found(res.name, info.name, res.group)
    if info.verb == "get":
        return respond(current)
    if info.verb == "delete":
        store.delete(res.name, ns, info.name)
        return respond({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                        "details": {"name": info.name, "group": res.group, "kind": res.name,
                                    "uid": current["metadata"]["uid"]}})
    if info.verb == "update":
        new = ctx.obj()
        wanted = new.get("metadata", {}).get("resourceVersion")
        if wanted and wanted != current["metadata"]["resourceVersion"]:
            raise conflict(res.name, info.name, res.group)
    elif info.verb == "patch":
        ctype = ctx.request.headers.get("Content-Type", "")
        new = apply_patch(ctype, current, ctx.body)
    else:
        raise method_not_allowed()
    return respond(store.update(res.name, _keep_identity(current, new)))


async def self_subject_access_review(ctx: Ctx) -> web.StreamResponse:
    if ctx.info.verb != "create":
        raise method_not_allowed()
    return respond(ctx.double.authorizer.review(ctx.user, ctx.obj()), 201)


async def dispatch(ctx: Ctx) -> web.StreamResponse:
    info = ctx.info
    res = discovery.find_resource(info.group, info.resource)
    if res is None or res.version != info.version:
        raise no_such_route()
    if res.name == "pods":
        return await pods.handle(ctx, res)
    if res.name == "selfsubjectaccessreviews":
        return await self_subject_access_review(ctx)
    return await generic(ctx, res)
