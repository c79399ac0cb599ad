"""Object store: one resourceVersion counter, selectors, and watch fan-out.

Everything here runs on the double's event loop thread, so there are no locks. Objects are plain
JSON dicts; callers always get deep copies so a handler cannot change stored state by accident.
"""

from __future__ import annotations

import asyncio
import builtins
import copy
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]
Key = tuple[str, str, str]  # (resource, namespace or "", name)
Listener = Callable[[str, str, Obj, Obj | None], None]

HISTORY = 5000  # events kept for watches that resume from a resourceVersion


def get_path(obj: Obj, dotted: str) -> Any:
    cur: Any = obj
    for part in dotted.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


# --- selectors -----------------------------------------------------------------------------

_SET_RE = re.compile(r"^\s*(!?)([A-Za-z0-9._/-]+)\s*(?:(in|notin)\s*\(([^)]*)\))?\s*$")


def _split_top(text: str) -> list[str]:
    # Commas inside "in (a,b)" do not separate requirements.
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


LabelReq = tuple[str, str, set[str]]  # (key, op, values)


def parse_label_selector(text: str | None) -> list[LabelReq]:
    reqs: list[LabelReq] = []
    for part in _split_top(text or ""):
        for op in ("!=", "==", "="):
            if op in part and " in " not in part and "notin" not in part:
                k, v = part.split(op, 1)
                reqs.append((k.strip(), "!=" if op == "!=" else "=", {v.strip()}))
                break
        else:
            m = _SET_RE.match(part)
            if not m:
                raise ValueError(f"unable to parse requirement: {part!r}")
            neg, key, setop, values = m.groups()
            if setop:
                reqs.append((key, setop, {v.strip() for v in values.split(",") if v.strip()}))
            else:
                reqs.append((key, "!exists" if neg else "exists", set()))
    return reqs


def label_matches(labels: dict[str, str] | None, reqs: list[LabelReq]) -> bool:
    labels = labels or {}
    for key, op, values in reqs:
        present = key in labels
        value = labels.get(key)
        ok = {
            "=": present and value in values,
            "!=": not present or value not in values,
            "in": present and value in values,
            "notin": not present or value not in values,
            "exists": present,
            "!exists": not present,
        }[op]
        if not ok:
            return False
    return True


FieldReq = tuple[str, bool, str]  # (path, equal, value)


def parse_field_selector(text: str | None) -> list[FieldReq]:
    reqs: list[FieldReq] = []
    for part in _split_top(text or ""):
        for op, equal in (("!=", False), ("==", True), ("=", True)):
            if op in part:
                k, v = part.split(op, 1)
                reqs.append((k.strip(), equal, v.strip()))
                break
        else:
            raise ValueError(f"invalid selector: '{part}'; can't understand '{part}'")
    return reqs


def field_matches(obj: Obj, reqs: list[FieldReq]) -> bool:
    for path, equal, value in reqs:
        actual = get_path(obj, path)
        if actual is None:
            text = ""
        else:
            text = str(actual).lower() if isinstance(actual, bool) else str(actual)
        if (text == value) != equal:
            return False
    return True


# --- store ---------------------------------------------------------------------------------


@dataclass(eq=False)
class Watcher:
    resource: str
    namespace: str | None
    labels: list[LabelReq]
    fields: list[FieldReq]
    queue: asyncio.Queue[tuple[str, Obj]] = field(default_factory=asyncio.Queue)

    def matches(self, obj: Obj | None) -> bool:
        if obj is None:
            return False
        meta = obj.get("metadata", {})
        if self.namespace and meta.get("namespace") != self.namespace:
            return False
        return label_matches(meta.get("labels"), self.labels) and field_matches(obj, self.fields)

    def offer(self, etype: str, obj: Obj, old: Obj | None) -> None:
        # A filtered watch sees an object enter or leave its selection as ADDED / DELETED,
        # as the apiserver's watch cache does.
        now, before = self.matches(obj), self.matches(old)
        if etype == "MODIFIED":
            if now and not before:
                etype = "ADDED"
            elif before and not now:
                etype = "DELETED"
            elif not now:
                return
        elif not now:
            return
        self.queue.put_nowait((etype, obj))


class Gone(Exception):
    """The requested resourceVersion is older than the kept history."""


class Store:
    def __init__(self) -> None:
        self.rv = 100
        self.objects: dict[Key, Obj] = {}
        self.history: deque[tuple[int, str, str, Obj, Obj | None]] = deque(maxlen=HISTORY)
        self.watchers: set[Watcher] = set()
        self.listeners: list[Listener] = []

    # reads
    def get(self, resource: str, namespace: str, name: str) -> Obj | None:
        obj = self.objects.get((resource, namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def list(
        self,
        resource: str,
        namespace: str | None = None,
        labels: list[LabelReq] | None = None,
        fields: list[FieldReq] | None = None,
    ) -> list[Obj]:
        out = []
        for (res, ns, _), obj in sorted(self.objects.items()):
            if res != resource or (namespace and ns != namespace):
                continue
            if labels and not label_matches(obj["metadata"].get("labels"), labels):
                continue
            if fields and not field_matches(obj, fields):
                continue
            out.append(copy.deepcopy(obj))
        return out

    # writes
    def _emit(self, resource: str, etype: str, obj: Obj, old: Obj | None) -> None:
        snapshot = copy.deepcopy(obj)
        self.history.append((self.rv, resource, etype, snapshot, old))
        for w in list(self.watchers):
            if w.resource == resource:
                w.offer(etype, copy.deepcopy(snapshot), old)
        for listener in list(self.listeners):
            listener(resource, etype, copy.deepcopy(snapshot), old)

    def _key(self, resource: str, obj: Obj) -> Key:
        meta = obj["metadata"]
        return (resource, meta.get("namespace", ""), meta["name"])

    def create(self, resource: str, obj: Obj) -> Obj:
        self.rv += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.objects[self._key(resource, obj)] = obj
        self._emit(resource, "ADDED", obj, None)
        return copy.deepcopy(obj)

    def update(self, resource: str, obj: Obj) -> Obj:
        """Replace the stored object; a no-op change keeps the resourceVersion."""
        key = self._key(resource, obj)
        old = self.objects.get(key)
        obj = copy.deepcopy(obj)
        if old is not None:
            obj["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
            if obj == old:
                return copy.deepcopy(old)
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.objects[key] = obj
        self._emit(resource, "MODIFIED", obj, copy.deepcopy(old) if old else None)
        return copy.deepcopy(obj)

    def delete(self, resource: str, namespace: str, name: str) -> Obj | None:
        old = self.objects.pop((resource, namespace, name), None)
        if old is None:
            return None
        self.rv += 1
        gone = copy.deepcopy(old)
        gone["metadata"]["resourceVersion"] = str(self.rv)
        self._emit(resource, "DELETED", gone, copy.deepcopy(old))
        return gone

    # watch
    def watch(
        self,
        resource: str,
        namespace: str | None,
        labels: builtins.list[LabelReq],
        fields: builtins.list[FieldReq],
        resource_version: str | None,
    ) -> Watcher:
        w = Watcher(resource, namespace, labels, fields)
        if not resource_version or resource_version == "0":
            # "Get state and start at most recent": synthetic ADDED events first.
            for obj in self.list(resource, namespace, labels, fields):
                w.queue.put_nowait(("ADDED", obj))
        else:
            since = int(resource_version)
            oldest = self.history[0][0] if self.history else self.rv + 1
            if since < oldest - 1 and since < self.rv:
                raise Gone(f"too old resource version: {since} ({self.rv})")
            for rv, res, etype, obj, old in list(self.history):
                if rv > since and res == resource:
                    w.offer(etype, copy.deepcopy(obj), old)
        self.watchers.add(w)
        return w

    def unwatch(self, w: Watcher) -> None:
        self.watchers.discard(w)
