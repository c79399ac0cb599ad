"""The three patch types kube-apiserver accepts for pods.

Strategic merge patch needs each list's patch strategy. Go reads it from struct tags; here a
table keyed by field name covers the core/v1 lists that matter for pods (merge by `name`, by
`mountPath`, ...). Every other list is replaced, as SMP does for lists without a merge key.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from .status import ApiError, bad_request, unprocessable_patch

# field name -> merge key (from `patchMergeKey` tags in k8s.io/api core/v1 and meta/v1)
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "ports": "containerPort",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "ownerReferences": "uid",
    "conditions": "type",
    "containerStatuses": "name",
    "initContainerStatuses": "name",
    "ephemeralContainerStatuses": "name",
    "hostAliases": "ip",
    "readinessGates": "conditionType",
    "resourceClaims": "name",
    "schedulingGates": "name",
    "topologySpreadConstraints": "topologyKey",
}
# lists of scalars with patchStrategy "merge"
PRIMITIVE_MERGE = {"finalizers"}

ORDER = "$setElementOrder/"
DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"


def strategic_merge(original: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    result: dict[str, Any] = copy.deepcopy(original) if isinstance(original, dict) else {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key.startswith(ORDER) or key in ("$patch", "$retainKeys"):
            continue
        if key.startswith(DELETE_PRIMITIVE):
            name = key[len(DELETE_PRIMITIVE) :]
            result[name] = [v for v in result.get(name) or [] if v not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            if value.get("$patch") == "delete":
                result.pop(key, None)
            else:
                result[key] = strategic_merge(result.get(key), value)
        elif isinstance(value, list) and key in MERGE_KEYS:
            result[key] = _merge_list(result.get(key) or [], value, MERGE_KEYS[key])
        elif isinstance(value, list) and key in PRIMITIVE_MERGE:
            merged = list(result.get(key) or [])
            merged += [v for v in value if v not in merged]
            result[key] = merged
        else:
            result[key] = copy.deepcopy(value)
    for key, value in patch.items():
        if key.startswith(ORDER):
            name = key[len(ORDER) :]
            if isinstance(result.get(name), list):
                result[name] = _reorder(result[name], value, MERGE_KEYS.get(name))
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(original: list[Any], patch: list[Any], key: str) -> list[Any]:
    out = copy.deepcopy(original)
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise bad_request(f"map: {item} does not contain declared merge key: {key}")
        index = next((i for i, o in enumerate(out) if o.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if index is not None:
                out.pop(index)
        elif index is not None:
            out[index] = strategic_merge(out[index], item)
        else:
            out.append(strategic_merge({}, item))
    return out


def _reorder(items: list[Any], order: list[Any], key: str | None) -> list[Any]:
    def ident(v: Any) -> Any:
        return v.get(key) if key and isinstance(v, dict) else v

    wanted = [ident(o) for o in order]
    ranked = sorted(
        enumerate(items),
        key=lambda p: (wanted.index(ident(p[1])) if ident(p[1]) in wanted else len(wanted), p[0]),
    )
    return [v for _, v in ranked]


def merge_patch(original: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: lists are replaced whole."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(original) if isinstance(original, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise unprocessable_patch(f'add operation does not apply: doc is missing path: "{path}"')
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _missing(op: str, path: str) -> ApiError:
    return unprocessable_patch(
        f'{op} operation does not apply: doc is missing path: "{path}": missing value'
    )


def _parent(doc: Any, parts: list[str], op: str, path: str) -> Any:
    cur = doc
    for part in parts[:-1]:
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            raise _missing(op, path)
    return cur


def _get(doc: Any, path: str, op: str) -> Any:
    parts = _pointer(path)
    if not parts:
        return doc
    parent = _parent(doc, parts, op, path)
    last = parts[-1]
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent[int(last)]
    raise _missing(op, path)


def json_patch(original: Any, operations: Any) -> Any:
    """RFC 6902 JSON patch with evanphx/json-patch's error texts."""
    if not isinstance(operations, list):
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = copy.deepcopy(original)
    for operation in operations:
        op, path = operation.get("op"), operation.get("path", "")
        if op in ("move", "copy"):
            value = copy.deepcopy(_get(doc, operation.get("from", ""), op))
            if op == "move":
                doc = json_patch(doc, [{"op": "remove", "path": operation["from"]}])
            op, operation = "add", {"value": value}
        if op == "test":
            if _get(doc, path, op) != operation.get("value"):
                raise unprocessable_patch(f'testing value {path} failed: test failed')
            continue
        parts = _pointer(path)
        if not parts:
            doc = copy.deepcopy(operation.get("value"))
            continue
        parent = _parent(doc, parts, op, path)
        last = parts[-1]
        if isinstance(parent, dict):
            if op in ("remove", "replace") and last not in parent:
                raise _missing(op, path)
            if op == "remove":
                del parent[last]
            else:
                parent[last] = copy.deepcopy(operation.get("value"))
        elif isinstance(parent, list):
            index = len(parent) if last == "-" else int(last) if last.isdigit() else -1
            if index < 0 or index > len(parent) or (op != "add" and index == len(parent)):
                raise _missing(op, path)
            if op == "add":
                parent.insert(index, copy.deepcopy(operation.get("value")))
            elif op == "remove":
                parent.pop(index)
            elif op == "replace":
                parent[index] = copy.deepcopy(operation.get("value"))
        else:
            raise _missing(op, path)
        if op not in ("add", "remove", "replace"):
            raise bad_request(f"Unexpected kind: {op}")
    return doc


def apply_patch(content_type: str, original: dict[str, Any], body: bytes) -> dict[str, Any]:
    kind = content_type.split(";")[0].strip()
    try:
        patch = json.loads(body or b"null")
    except ValueError as err:
        raise bad_request(f"error decoding patch: {err}") from err
    if kind == "application/strategic-merge-patch+json":
        if not isinstance(patch, dict):
            raise bad_request("json: cannot unmarshal array into Go value of type "
                              "map[string]interface {}")
        result = strategic_merge(original, patch)
    elif kind == "application/merge-patch+json":
        result = merge_patch(original, patch)
    elif kind == "application/json-patch+json":
        result = json_patch(original, patch)
    else:
        raise ApiError(
            415,
            "UnsupportedMediaType",
            f'the body of the request was in an unknown format - accepted media types include: '
            f'application/json-patch+json, application/merge-patch+json, '
            f'application/apply-patch+yaml, application/strategic-merge-patch+json (got "{kind}")',
        )
    if not isinstance(result, dict):
        raise unprocessable_patch("patched object is not a JSON object")
    return result
