"""Authentication (bearer tokens) and RBAC-like authorization, configurable from tests.

Real RBAC only grants. For tests it is handier to start from "may do everything" and take single
permissions away (`deny`), or to start from nothing and grant (`restrict` + `allow`). Either way a
refusal carries the apiserver's exact Forbidden text, and SelfSubjectAccessReview answers from
the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .status import forbidden


@dataclass(frozen=True)
class Attributes:
    """What the apiserver's RequestInfo resolver extracts from a request."""

    user: str
    verb: str
    resource: str = ""
    subresource: str = ""
    name: str = ""
    namespace: str = ""
    group: str = ""
    path: str = ""

    @property
    def is_resource(self) -> bool:
        return bool(self.resource)


@dataclass(frozen=True)
class Rule:
    verb: str = "*"
    resource: str = "*"
    subresource: str | None = None  # None: any subresource (and none); "": only the main resource
    namespace: str | None = None
    name: str | None = None
    group: str | None = None

    def matches(self, a: Attributes) -> bool:
        return (
            self.verb in ("*", a.verb)
            and self.resource in ("*", a.resource)
            and (self.subresource is None or self.subresource == a.subresource)
            and (self.namespace is None or self.namespace == a.namespace)
            and (self.name is None or self.name == a.name)
            and (self.group is None or self.group == a.group)
        )


@dataclass
class User:
    name: str
    token: str
    allow_all: bool = True
    allow: list[Rule] = field(default_factory=list)
    deny: list[Rule] = field(default_factory=list)


ANONYMOUS = "system:anonymous"


class Authorizer:
    def __init__(self) -> None:
        self.users: dict[str, User] = {}
        self.revoked: set[str] = set()

    def add_user(self, name: str, token: str, allow_all: bool = True) -> User:
        user = User(name, token, allow_all)
        self.users[name] = user
        return user

    def authenticate(self, header: str | None) -> str | None:
        """User name for an Authorization header; None means 401 (bad or revoked token)."""
        if not header:
            return ANONYMOUS
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or token in self.revoked:
            return None
        return next((u.name for u in self.users.values() if u.token == token.strip()), None)

    def allowed(self, a: Attributes) -> bool:
        if not a.is_resource:
            return True  # discovery, /version, /healthz: open to everyone, like system:discovery
        user = self.users.get(a.user)
        if user is None:
            return False
        if any(r.matches(a) for r in user.deny):
            return False
        return user.allow_all or any(r.matches(a) for r in user.allow)

    def check(self, a: Attributes) -> None:
        if not self.allowed(a):
            raise forbidden(a.resource, a.name or None, forbidden_reason(a), a.group)

    def review(self, requester: str, body: dict[str, Any]) -> dict[str, Any]:
        """Answer a SelfSubjectAccessReview for `requester`."""
        spec = body.get("spec") or {}
        ra = spec.get("resourceAttributes")
        if ra:
            attrs = Attributes(
                user=requester,
                verb=ra.get("verb", ""),
                resource=ra.get("resource", ""),
                subresource=ra.get("subresource", ""),
                name=ra.get("name", ""),
                namespace=ra.get("namespace", ""),
                group=ra.get("group", ""),
            )
            allowed = self.allowed(attrs) if attrs.resource else True
        else:
            allowed = True
        status: dict[str, Any] = {"allowed": allowed}
        if allowed:
            status["reason"] = (
                f'RBAC: allowed by ClusterRoleBinding "double-{requester}" of ClusterRole '
                f'"double-{requester}" to User "{requester}"'
            )
        return {
            "kind": "SelfSubjectAccessReview",
            "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            "spec": spec,
            "status": status,
        }


def forbidden_reason(a: Attributes) -> str:
    """`forbiddenMessage` from apiserver's responsewriters/errors.go."""
    if not a.is_resource:
        return f'User "{a.user}" cannot {a.verb} path "{a.path}"'
    resource = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
    where = f'in the namespace "{a.namespace}"' if a.namespace else "at the cluster scope"
    return f'User "{a.user}" cannot {a.verb} resource "{resource}" in API group "{a.group}" {where}'
