"""Kubernetes API refusals in plain words. Pure: works on the status the server sent back."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from distrodebug.errors import (
    DistrodebugError,
    EngineUnreachable,
    NoSuchTarget,
    PermissionDenied,
    SidecarFailed,
    TargetNotDebuggable,
)

_PSS = re.compile(r'violates PodSecurity "(?P<level>[a-z]+):[^"]*": (?P<why>.*)')
_CONTAINER = re.compile(r'containers? ((?:"[^"]+"(?:, )?)+)')


class PodSecurityRefused(PermissionDenied):
    """Pod Security admission refused a pod or an ephemeral container, naming the containers."""

    def __init__(self, message: str, hint: str, level: str, containers: tuple[str, ...]) -> None:
        super().__init__(message, hint)
        self.level = level
        self.containers = containers


def pss_containers(why: str) -> tuple[str, ...]:
    """The container names a Pod Security violation message names."""
    found: list[str] = []
    for group in _CONTAINER.findall(why):
        found += [name for name in re.findall(r'"([^"]+)"', group) if name not in found]
    return tuple(found)
_RBAC = re.compile(r'cannot (?P<verb>\w+) resource "(?P<resource>[^"]+)"')


def _status(exc: Any) -> Mapping[str, Any]:
    body = getattr(exc, "body", None)
    try:
        parsed = json.loads(body) if body else {}
    except (TypeError, ValueError):
        parsed = {}
    return parsed if isinstance(parsed, dict) else {}


def translate(exc: Any, what: str, pod: str, namespace: str) -> DistrodebugError:
    """Our error for an ApiException raised while doing ``what``."""
    status = _status(exc)
    message = str(status.get("message") or getattr(exc, "reason", "") or exc)
    code = int(getattr(exc, "status", 0) or 0)
    details = status.get("details") or {}
    if code == 401:
        return PermissionDenied(
            f"The Kubernetes API rejected our credentials while {what}: {message}.",
            "They may have expired: log in again (e.g. refresh your cloud CLI credentials) and "
            "check with 'kubectl get pods'.",
        )
    if code == 403:
        pss = _PSS.search(message)
        if pss:
            level = pss.group("level")
            passing = "restricted" if level == "restricted" else "baseline"
            return PodSecurityRefused(
                f"Pod Security admission refused {what}: the namespace '{namespace}' "
                f"enforces the '{level}' level, and {pss.group('why')}.",
                f"Use --profile {passing} (or --profile auto), which passes '{level}'.",
                level, pss_containers(pss.group("why")),
            )
        rbac = _RBAC.search(message)
        if rbac and 'User "system:anonymous"' in message:
            return PermissionDenied(
                f"The API server saw no credentials while {what} (it calls us system:anonymous).",
                "The kubeconfig's user has no working token or certificate: log in again, or "
                "check 'kubectl config view --minify'.")
        if rbac:
            verb, resource = rbac.group("verb"), rbac.group("resource")
            resource_name, _, sub = resource.partition("/")
            sub_flag = f" --subresource={sub}" if sub else ""
            return PermissionDenied(
                f"RBAC refused {what}: {message}.",
                f"You need '{verb}' on '{resource}' in namespace '{namespace}'. Check with "
                f"'kubectl auth can-i {verb} {resource_name}{sub_flag} -n {namespace}', and ask "
                "an admin for a role granting it (edit/admin do not include "
                "pods/ephemeralcontainers).",
            )
        return PermissionDenied(f"The cluster refused {what}: {message}.",
                                "Run 'distrodebug doctor' to see which permission is missing.")
    if code == 404:
        if "ephemeral" in what and not details.get("name"):
            return SidecarFailed(
                "Ephemeral containers are disabled for this cluster (the server has no "
                "pods/ephemeralcontainers subresource).",
                f"Debug a copy of the pod instead: 'distrodebug shell pod/{pod} --copy'.",
            )
        return NoSuchTarget(
            f"{message[:1].upper()}{message[1:]} in namespace '{namespace}'.",
            f"List them with 'kubectl get pods -n {namespace}', or pass -n NAMESPACE.",
        )
    if "static pods do not support ephemeral containers" in message:
        return TargetNotDebuggable(
            f"Pod '{pod}' is a static (mirror) pod: the kubelet runs it from a file on its node, "
            "and the API server cannot add ephemeral containers to it.",
            f"Debug a copy of it ('distrodebug shell pod/{pod} --copy'), or its node "
            "('distrodebug shell node/NODE', where the app's processes are visible).")
    if code == 422:
        return SidecarFailed(f"The API server rejected {what}: {message}.",
                             "Check the flags that shape the debugger (--custom, --user, "
                             "--privileged, --env); report it if they are not the cause.")
    if code == 0 or code >= 500:
        return EngineUnreachable(f"The Kubernetes API failed while {what}: {message}.",
                                 "Check 'kubectl cluster-info' and try again.")
    return SidecarFailed(f"The Kubernetes API refused {what}: {message} (HTTP {code}).", "")


def waiting_failed(name: str, waiting: Mapping[str, Any], pod: str, namespace: str) -> DistrodebugError:
    """The debugger is stuck in a state the kubelet will not leave by itself."""
    reason = str(waiting.get("reason", ""))
    message = str(waiting.get("message", "")).strip()
    if reason in ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"):
        hint = ("The cluster's nodes cannot pull the debug image: push it to a registry they "
                "reach and pass --image, or set DISTRODEBUG_IMAGE.")
    elif reason == "CreateContainerConfigError" and "non-root" in message:
        hint = "The pod requires non-root: use --profile auto or --user UID."
    else:
        hint = f"See 'kubectl describe pod {pod} -n {namespace}'."
    return SidecarFailed(
        f"The debug container {name} cannot start: {reason}: {message or 'no message'}.", hint)
