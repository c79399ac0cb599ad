"""`doctor`: will debugging work here, and if not, what is missing? Returns checks, never prints."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from distrodebug.errors import DistrodebugError
from distrodebug.model import DebugOptions, Mode, Privileges, TargetInfo
from distrodebug.runtimes.kubernetes import profiles as kubeprofiles
from distrodebug.settings import Settings
from distrodebug.target import Target


class _Reachable(Protocol):
    endpoint: str

    def server_version(self) -> str: ...


class DockerFacts(_Reachable, Protocol):
    """What doctor asks of a Docker API engine (Docker or Podman; server_version names which)."""

    def rootless(self) -> str | None: ...

    def image_labels(self, ref: str) -> dict[str, str] | None: ...

    def inspect(self, target: Target) -> TargetInfo: ...

    def privileges(self, info: TargetInfo, options: DebugOptions) -> tuple[Mode, Privileges]: ...


class ClusterFacts(_Reachable, Protocol):
    """What doctor asks of a cluster."""

    @property
    def namespace(self) -> str: ...

    def can_i(self, verb: str, resource: str, subresource: str, name: str) -> tuple[bool, str]: ...

    def namespace_labels(self) -> dict[str, str] | None: ...

    def inspect(self, target: Target) -> TargetInfo: ...


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    #: False for checks that only inform (a missing optional permission).
    required: bool = True


@dataclass
class Report:
    runtime: str
    endpoint: str
    checks: list[Check] = field(default_factory=list)
    prediction: str = ""

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks if check.required)

    def to_json(self) -> dict[str, Any]:
        return {"runtime": self.runtime, "endpoint": self.endpoint, "ok": self.ok,
                "prediction": self.prediction, "checks": [asdict(c) for c in self.checks]}


#: (verb, resource, subresource, needed for) — what the commands need, with the subresource set:
#: `kubectl auth can-i patch pods/ephemeralcontainers` would check a pod *named* that.
KUBE_PERMISSIONS: tuple[tuple[str, str, str, str, bool], ...] = (
    ("get", "pods", "", "read the target pod", True),
    ("patch", "pods", "ephemeralcontainers", "add an ephemeral debug container", True),
    ("watch", "pods", "", "wait for the debugger to start", True),
    ("get", "pods", "attach", "attach a shell (WebSocket)", True),
    ("create", "pods", "attach", "attach a shell (1.35+ checks create too)", False),
    ("get", "pods", "exec", "exec and cp through a debugger (WebSocket)", True),
    ("create", "pods", "exec", "exec (1.35+ checks create too)", False),
    ("get", "pods", "log", "read logs for dumps", False),
    ("create", "pods", "", "debug a copy of a crash-looping pod (--copy), node debugging", False),
    ("delete", "pods", "", "remove copies and node pods afterwards", False),
    ("get", "nodes", "", "node debugging (node/NAME)", False),
    ("get", "namespaces", "", "read the namespace's Pod Security level", False),
    ("create", "events", "", "leave a 'Debugged' Event on the pod (else only the local audit log)",
     False),
)


def _reachable(runtime: _Reachable, report: Report, what: str, prefix: str = "") -> str | None:
    """The server's version, after recording whether it answered at all."""
    try:
        version = str(runtime.server_version())
    except DistrodebugError as exc:
        report.checks.append(Check(f"{what} reachable", False, exc.paragraph()))
        return None
    report.checks.append(Check(f"{what} reachable", True, f"{runtime.endpoint}, {prefix}{version}"))
    return version


def kubernetes(runtime: ClusterFacts, target: Target | None, settings: Settings,
               profile: str = "auto") -> Report:
    report = Report("kubernetes", runtime.endpoint)
    version = _reachable(runtime, report, "cluster")
    if version is None:
        return report
    minor = _minor(version)
    report.checks.append(Check(
        "ephemeral containers", minor is None or minor >= 25,
        "GA since 1.25" if minor is None or minor >= 25 else
        f"{version} predates GA (1.25): they may be off; use --copy"))
    name = target.name if target and target.kind == "pod" else ""
    for verb, resource, sub, why, required in KUBE_PERMISSIONS:
        if verb == "create" and sub in ("exec", "attach") and minor is not None and minor >= 35:
            # From 1.35 the API server checks `create` on WebSocket exec and attach too.
            required, why = True, why.replace(" (1.35+ checks create too)", " (1.35+: required)")
        allowed, reason = runtime.can_i(verb, resource, sub, name if resource == "pods" else "")
        label = f"{verb} {resource}{'/' + sub if sub else ''}"
        report.checks.append(Check(label, allowed, why if allowed else f"denied: {why}"
                                   + (f" ({reason})" if reason else ""), required))
    labels = runtime.namespace_labels()
    level = (labels or {}).get("pod-security.kubernetes.io/enforce") if labels is not None else None
    report.checks.append(Check(
        "pod security", True,
        f"namespace '{runtime.namespace}' enforces '{level}'" if level else
        "no enforce label" if labels is not None else "namespace not readable", False))
    if target is not None and target.kind == "pod":
        try:
            info = runtime.inspect(target)
        except DistrodebugError as exc:
            report.checks.append(Check("target pod", False, exc.paragraph()))
            return report
        sec = kubeprofiles.pod_security(info.raw, info.container, labels)
        spec = info.raw.get("spec") or {}
        facts = [f"container '{info.container}' {info.status}"]
        if sec.run_as_user is not None:
            facts.append(f"runAsUser {sec.run_as_user}")
        if sec.run_as_non_root:
            facts.append("runAsNonRoot")
        if sec.read_only_root:
            facts.append("read-only root")
        if spec.get("hostUsers") is False:
            facts.append("hostUsers: false (user namespace: capabilities stay inside it)")
        report.checks.append(Check("target pod", info.status == "running", ", ".join(facts)))
        try:
            choice = kubeprofiles.choose(profile, sec)
            report.prediction = f"{choice.describe()}: {choice.reason}"
        except DistrodebugError as exc:
            report.checks.append(Check("profile", False, exc.paragraph()))
    return report


def docker(runtime: DockerFacts, target: Target | None, settings: Settings) -> Report:
    report = Report("docker", runtime.endpoint)
    if _reachable(runtime, report, "engine") is None:
        return report
    try:
        cgroups = runtime.rootless()
    except DistrodebugError:
        cgroups = None
    if cgroups is not None:
        report.checks.append(Check(
            "rootless engine", False,
            "the engine runs rootless: only this user's containers can be debugged, and a "
            "sidecar's root and capabilities (--privileged too) hold only inside the user's "
            "namespace" + (
                "; on cgroup v1 no limit is enforced on a sidecar (dump and cp jobs run without "
                "their memory and process caps)" if cgroups == "1" else "")
            + " (README: Podman)", False))
    labels = runtime.image_labels(settings.image)
    report.checks.append(Check(
        "debug image", labels is not None,
        f"{settings.image} ({settings.image_source})" if labels is not None else
        f"{settings.image} is not on the engine: run 'distrodebug toolbox build' or pass --image"))
    if labels is not None:
        report.checks.append(Check("subreaper in the debug image", "io.distrodebug.reaper" in labels,
                                   "orphans are reaped" if "io.distrodebug.reaper" in labels else
                                   "background processes may linger as zombies", False))
    if target is not None:
        try:
            info = runtime.inspect(target)
            mode, priv = runtime.privileges(info, DebugOptions())
            report.checks.append(Check("target", True, f"{info.name}: {info.status}"))
            report.prediction = f"{mode}: {priv.describe()} ({priv.reason})"
        except DistrodebugError as exc:
            report.checks.append(Check("target", False, exc.paragraph()))
    return report


def _minor(version: str) -> int | None:
    parts = version.lstrip("v").split(".")
    try:
        return int("".join(ch for ch in parts[1] if ch.isdigit()))
    except (IndexError, ValueError):
        return None
