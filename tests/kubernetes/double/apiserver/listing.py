"""Collections: list (plain or as a Table for kubectl get) and watch (JSON lines, chunked)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from . import discovery
from .http import Ctx, respond
from .status import ApiError, bad_request
from .store import Gone, parse_field_selector, parse_label_selector


def api_version(res: discovery.Resource) -> str:
    return f"{res.group}/{res.version}" if res.group else res.version


def selectors(ctx: Ctx) -> tuple[Any, Any]:
    try:
        return (parse_label_selector(ctx.query("labelSelector")),
                parse_field_selector(ctx.query("fieldSelector")))
    except ValueError as err:
        raise bad_request(str(err)) from err


async def list_or_watch(ctx: Ctx, res: discovery.Resource) -> web.StreamResponse:
    labels, fields = selectors(ctx)
    namespace = ctx.info.namespace if res.namespaced else None
    store = ctx.double.store
    if ctx.info.verb == "watch":
        return await serve_watch(ctx, res.name, namespace, labels, fields)
    items = store.list(res.name, namespace, labels, fields)
    rv = str(store.rv)
    accept = ctx.request.headers.get("Accept", "")
    if discovery.wants_table(accept):
        return respond(discovery.to_table(res.name, items, rv, ctx.query("includeObject") or ""))
    for item in items:
        item.setdefault("apiVersion", api_version(res))
        item.setdefault("kind", res.kind)
    return respond({"kind": f"{res.kind}List", "apiVersion": api_version(res),
                    "metadata": {"resourceVersion": rv}, "items": items})


async def serve_watch(ctx: Ctx, resource: str, namespace: str | None, labels: Any,
                      fields: Any) -> web.StreamResponse:
    store, loop = ctx.double.store, asyncio.get_running_loop()
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await resp.prepare(ctx.request)
    ctx.record.status = 200  # the log shows a watch as answered while it still streams
    try:
        watcher = store.watch(resource, namespace, labels, fields, ctx.query("resourceVersion"))
    except Gone as gone:
        status = ApiError(410, "Expired", str(gone)).status()
        await resp.write(json.dumps({"type": "ERROR", "object": status}).encode() + b"\n")
        return resp
    deadline = loop.time() + int(ctx.query("timeoutSeconds") or 1800)
    table = discovery.wants_table(ctx.request.headers.get("Accept", ""))
    try:
        while (remaining := deadline - loop.time()) > 0:
            try:
                etype, obj = await asyncio.wait_for(watcher.queue.get(), remaining)
            except TimeoutError:
                break
            if table and etype != "ERROR":
                # kubectl get -w asks for server-side printing: one-row Tables per event
                obj = discovery.to_table(resource, [obj], obj["metadata"]["resourceVersion"],
                                         ctx.query("includeObject") or "")
            await resp.write(json.dumps({"type": etype, "object": obj},
                                        separators=(",", ":")).encode() + b"\n")
    except (ConnectionResetError, RuntimeError):
        pass  # the client went away
    finally:
        store.unwatch(watcher)
    return resp
