"""Kubernetes debug profiles: kubectl's names and effects, plus `auto`. Pure functions.

The named profiles give the debug container exactly the securityContext kubectl gives it
(kubectl/pkg/cmd/debug/profiles.go). `auto` reads what the pod says about its user and the
namespace's Pod Security level, and picks the least privilege that can read the target's root
without being certain to fail admission or the kubelet's runAsNonRoot check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from distrodebug.errors import UsageError

PROFILES = ("auto", "general", "baseline", "restricted", "netadmin", "sysadmin", "legacy")
PSS_LEVELS = ("privileged", "baseline", "restricted")

#: The debug container's securityContext per profile, as kubectl sends it (None: none at all).
PROFILE_CONTEXT: dict[str, dict[str, Any] | None] = {
    "legacy": None,
    "general": {"capabilities": {"add": ["SYS_PTRACE"]}},
    "baseline": None,
    "restricted": {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    },
    "netadmin": {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"]}},
    "sysadmin": {"privileged": True},
}

#: The lowest Pod Security level each profile's ephemeral container passes.
PROFILE_LEVEL = {
    "legacy": "baseline",
    "baseline": "baseline",
    "restricted": "restricted",
    "general": "privileged",
    "netadmin": "privileged",
    "sysadmin": "privileged",
}


@dataclass(frozen=True)
class PodSecurity:
    """What the pod and its namespace say about users and privilege."""

    #: Effective runAsUser of the target container (container setting over pod setting).
    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool = False
    read_only_root: bool = False
    #: The namespace's pod-security.kubernetes.io/enforce level, None when unknown or unset.
    enforce: str | None = None
    #: True when we could read the namespace (so None above means "no label").
    namespace_read: bool = False


@dataclass(frozen=True)
class KubeChoice:
    profile: str
    security_context: dict[str, Any] | None
    #: "chroot" when the debugger runs as root and can chroot, else "proc".
    view: str
    reason: str

    def describe(self) -> str:
        ctx = self.security_context or {}
        who = f"uid {ctx['runAsUser']}" if "runAsUser" in ctx else "the image's user"
        caps = (ctx.get("capabilities") or {}).get("add") or []
        extra = "".join(f" +{cap}" for cap in caps)
        if ctx.get("privileged"):
            extra += " privileged"
        return f"profile {self.profile}: {who}{extra}"


def level_allows(level: str | None, profile: str) -> bool:
    """True when a namespace enforcing ``level`` admits the profile's debug container."""
    if level in (None, "privileged"):
        return True
    order = {name: i for i, name in enumerate(PSS_LEVELS)}
    needed = PROFILE_LEVEL.get(profile, "privileged")
    return order[needed] >= order.get(level, 0)


def pod_security(pod: Mapping[str, Any], container: str,
                 namespace_labels: Mapping[str, str] | None) -> PodSecurity:
    """Read a pod object (as JSON) for the target container's security facts."""
    spec = pod.get("spec") or {}
    pod_ctx = spec.get("securityContext") or {}
    ctx: Mapping[str, Any] = {}
    for item in spec.get("containers") or []:
        if item.get("name") == container:
            ctx = item.get("securityContext") or {}

    def pick(key: str) -> Any:
        return ctx.get(key) if ctx.get(key) is not None else pod_ctx.get(key)

    enforce = None
    if namespace_labels is not None:
        enforce = namespace_labels.get("pod-security.kubernetes.io/enforce")
    return PodSecurity(
        run_as_user=pick("runAsUser"),
        run_as_group=pick("runAsGroup"),
        run_as_non_root=bool(pick("runAsNonRoot")),
        read_only_root=bool(ctx.get("readOnlyRootFilesystem")),
        enforce=enforce,
        namespace_read=namespace_labels is not None,
    )


def _restricted_as(uid: int, gid: int | None) -> dict[str, Any]:
    ctx: dict[str, Any] = dict(PROFILE_CONTEXT["restricted"] or {})
    ctx["runAsUser"] = uid
    if gid is not None:
        ctx["runAsGroup"] = gid
    return ctx


def choose(profile: str, sec: PodSecurity) -> KubeChoice:
    """The debug container's securityContext for ``profile`` ("auto" decides here)."""
    if profile not in PROFILES:
        raise UsageError(f"Unknown profile '{profile}'.", f"Use one of: {', '.join(PROFILES)}.")
    if profile != "auto":
        if not level_allows(sec.enforce, profile):
            raise UsageError(
                f"The namespace enforces Pod Security '{sec.enforce}', which rejects the "
                f"'{profile}' profile's debug container.",
                f"Use --profile {'restricted' if sec.enforce == 'restricted' else 'baseline'}, or "
                "--profile auto to let distrodebug pick.",
            )
        ctx = PROFILE_CONTEXT[profile]
        root_view = profile in ("general", "sysadmin", "legacy", "baseline", "netadmin")
        view = "chroot" if root_view and not sec.run_as_non_root else "proc"
        return KubeChoice(profile, ctx, view, f"--profile {profile} was asked for")
    uid = sec.run_as_user
    if uid is not None and uid != 0:
        # Same uid as the target: /proc/1/root is readable with no capability at all, and this
        # passes even the restricted level. The price: no chroot, the root is under /proc.
        return KubeChoice(
            "restricted" if sec.enforce == "restricted" else "auto",
            _restricted_as(uid, sec.run_as_group),
            "proc",
            f"the target runs as uid {uid}: the debugger runs as uid {uid} too, with every "
            "capability dropped, which reads its root without SYS_PTRACE",
        )
    if sec.run_as_non_root:
        # Non-root but the uid is the image's secret: guess distroless's nonroot user.
        return KubeChoice(
            "auto", _restricted_as(65532, None), "proc",
            "the pod requires non-root but names no uid: the debugger runs as 65532 "
            "(distroless nonroot); use --profile with --user if the app runs as another uid",
        )
    if sec.enforce == "restricted":
        return KubeChoice(
            "restricted", _restricted_as(65532, None), "proc",
            "the namespace enforces 'restricted': the debugger runs as 65532 with every "
            "capability dropped",
        )
    if uid == 0 or sec.enforce == "baseline":
        why = "the target runs as root" if uid == 0 else (
            f"the namespace enforces '{sec.enforce}', which forbids SYS_PTRACE")
        return KubeChoice("baseline", None, "chroot",
                          f"{why}: the default capabilities are enough (baseline)")
    return KubeChoice(
        "general", PROFILE_CONTEXT["general"], "chroot",
        "the target's user is not known from the pod spec: added SYS_PTRACE (general) so root "
        "in the debugger can read its root whatever uid it runs as",
    )


def request_context(profile_context: Mapping[str, Any] | None, *, user: str | None,
                    cap_add: tuple[str, ...], privileged: bool) -> dict[str, Any] | None:
    """The debug container's securityContext: the profile's, then what the user asked for.

    Built so the API server and the kubelet accept it: ``privileged`` drops the profile's
    ``allowPrivilegeEscalation: false`` (the API server rejects the pair), and ``--user 0`` says
    ``runAsNonRoot: false`` explicitly, since a pod-level ``runAsNonRoot: true`` would otherwise
    apply to the debugger and the kubelet would never start it.
    """
    ctx: dict[str, Any] = {key: (dict(value) if isinstance(value, Mapping) else value)
                           for key, value in (profile_context or {}).items()}
    if user is not None:
        uid, _, gid = user.partition(":")
        if not uid.isdigit() or (gid and not gid.isdigit()):
            raise UsageError(f"--user '{user}' is not numeric.",
                             "Kubernetes needs a numeric uid (and gid): --user 65532 or --user 0:0.")
        ctx["runAsUser"] = int(uid)
        if gid:
            ctx["runAsGroup"] = int(gid)
        if int(uid) == 0:
            ctx["runAsNonRoot"] = False
    if cap_add:
        caps = dict(ctx.get("capabilities") or {})
        names = [cap.upper().removeprefix("CAP_") for cap in cap_add]
        caps["add"] = list(dict.fromkeys([*caps.get("add", []), *names]))
        ctx["capabilities"] = caps
    if privileged:
        ctx["privileged"] = True
        if ctx.get("allowPrivilegeEscalation") is False:
            del ctx["allowPrivilegeEscalation"]
    return ctx or None
