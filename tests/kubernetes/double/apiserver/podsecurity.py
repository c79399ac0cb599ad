"""Pod Security admission: the checks of k8s.io/pod-security-admission that debug pods meet.

The whole pod is evaluated (init, app and ephemeral containers, in that order), checks run in
check-ID order, and refusals use the admission plugin's format:
`pods "x" is forbidden: violates PodSecurity "baseline:latest": reason (detail), reason (detail)`.
Not modelled: AppArmor, SELinux, procMount, sysctls, Windows host process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .status import forbidden

Obj = dict[str, Any]
Result = tuple[str, str] | None  # (forbidden reason, forbidden detail)

LEVELS = ("privileged", "baseline", "restricted")
BASELINE_CAPS = {
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
    "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}
RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret",
}
VOLUME_TYPES = RESTRICTED_VOLUMES | {"hostPath", "nfs", "iscsi", "gitRepo", "image"}


def _plural(single: str, many: str, n: int) -> str:
    return single if n == 1 else many


def _quote(items: list[str]) -> str:
    return ", ".join(f'"{i}"' for i in items)


def _containers(spec: Obj) -> list[Obj]:
    return [c for k in ("initContainers", "containers", "ephemeralContainers")
            for c in spec.get(k) or []]


def _sc(c: Obj) -> Obj:
    return c.get("securityContext") or {}


def _who(names: list[str]) -> str:
    return f'{_plural("container", "containers", len(names))} {_quote(names)}'


def allow_privilege_escalation(spec: Obj) -> Result:
    bad = [c["name"] for c in _containers(spec)
           if _sc(c).get("allowPrivilegeEscalation") is not False]
    if bad:
        return ("allowPrivilegeEscalation != false",
                f"{_who(bad)} must set securityContext.allowPrivilegeEscalation=false")
    return None


def capabilities_baseline(spec: Obj) -> Result:
    bad, caps = [], set()
    for c in _containers(spec):
        added = [x for x in (_sc(c).get("capabilities") or {}).get("add") or []
                 if x not in BASELINE_CAPS]
        if added:
            bad.append(c["name"])
            caps.update(added)
    if bad:
        return ("non-default capabilities",
                f"{_who(bad)} must not include {_quote(sorted(caps))} in "
                "securityContext.capabilities.add")
    return None


def capabilities_restricted(spec: Obj) -> Result:
    missing_drop, adding, caps = [], [], set()
    for c in _containers(spec):
        capabilities = _sc(c).get("capabilities")
        if capabilities is None:
            missing_drop.append(c["name"])
            continue
        if "ALL" not in (capabilities.get("drop") or []):
            missing_drop.append(c["name"])
        added = [x for x in capabilities.get("add") or [] if x != "NET_BIND_SERVICE"]
        if added:
            adding.append(c["name"])
            caps.update(added)
    details = []
    if missing_drop:
        details.append(f'{_who(missing_drop)} must set securityContext.capabilities.drop=["ALL"]')
    if adding:
        details.append(f"{_who(adding)} must not include {_quote(sorted(caps))} in "
                       "securityContext.capabilities.add")
    return ("unrestricted capabilities", "; ".join(details)) if details else None


def host_namespaces(spec: Obj) -> Result:
    used = [f"{k}=true" for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k)]
    return ("host namespaces", ", ".join(used)) if used else None


def host_path_volumes(spec: Obj) -> Result:
    bad = [v["name"] for v in spec.get("volumes") or [] if "hostPath" in v]
    if not bad:
        return None
    return ("hostPath volumes", f'{_plural("volume", "volumes", len(bad))} {_quote(bad)}')


def host_ports(spec: Obj) -> Result:
    bad, ports = [], []
    for c in _containers(spec):
        used = [str(p["hostPort"]) for p in c.get("ports") or [] if p.get("hostPort")]
        if used:
            bad.append(c["name"])
            ports += used
    if bad:
        return ("hostPort", f'{_who(bad)} {_plural("uses", "use", len(bad))} '
                            f'{_plural("hostPort", "hostPorts", len(ports))} {", ".join(ports)}')
    return None


def privileged(spec: Obj) -> Result:
    bad = [c["name"] for c in _containers(spec) if _sc(c).get("privileged")]
    if not bad:
        return None
    return ("privileged", f"{_who(bad)} must not set securityContext.privileged=true")


def restricted_volumes(spec: Obj) -> Result:
    bad, types = [], set()
    for v in spec.get("volumes") or []:
        kinds = [k for k in v if k in VOLUME_TYPES and k not in RESTRICTED_VOLUMES]
        if kinds:
            bad.append(v["name"])
            types.update(kinds)
    if bad:
        n = len(bad)
        return ("restricted volume types",
                f'{_plural("volume", "volumes", n)} {_quote(bad)} {_plural("uses", "use", n)} '
                f'{_plural("restricted volume type", "restricted volume types", len(types))} '
                f"{_quote(sorted(types))}")
    return None


def _setters(spec: Obj, key: str, bad: Callable[[Any], bool],
             default_ok: Callable[[Any], bool]) -> tuple[list[str], list[str]]:
    """(explicit bad setters incl. "pod", containers that rely on nothing)."""
    pod_value = (spec.get("securityContext") or {}).get(key)
    setters = ["pod"] if pod_value is not None and bad(pod_value) else []
    pod_ok = pod_value is not None and default_ok(pod_value)
    explicit, implicit = [], []
    for c in _containers(spec):
        value = _sc(c).get(key)
        if value is not None:
            if bad(value):
                explicit.append(c["name"])
        elif not pod_ok:
            implicit.append(c["name"])
    if explicit:
        setters.append(_who(explicit))
    return setters, implicit


def run_as_non_root(spec: Obj) -> Result:
    if spec.get("hostUsers") is False:
        return None  # user-namespaced pods are exempt (KEP-127)
    setters, implicit = _setters(spec, "runAsNonRoot", lambda v: v is False, lambda v: v is True)
    if setters:
        return ("runAsNonRoot != true",
                f"{' and '.join(setters)} must not set securityContext.runAsNonRoot=false")
    if implicit:
        return ("runAsNonRoot != true",
                f"pod or {_who(implicit)} must set securityContext.runAsNonRoot=true")
    return None


def run_as_user(spec: Obj) -> Result:
    if spec.get("hostUsers") is False:
        return None
    setters, _ = _setters(spec, "runAsUser", lambda v: v == 0, lambda v: True)
    return ("runAsUser=0", f"{' and '.join(setters)} must not set runAsUser=0") if setters else None


def _seccomp_type(value: Any) -> str:
    return str((value or {}).get("type", ""))


def seccomp_baseline(spec: Obj) -> Result:
    setters, _ = _setters(spec, "seccompProfile",
                          lambda v: _seccomp_type(v) == "Unconfined", lambda v: True)
    if setters:
        return ("seccompProfile", f"{' and '.join(setters)} must not set "
                                  'securityContext.seccompProfile.type to "Unconfined"')
    return None


def seccomp_restricted(spec: Obj) -> Result:
    ok = ("RuntimeDefault", "Localhost")
    setters, implicit = _setters(spec, "seccompProfile",
                                 lambda v: _seccomp_type(v) not in ok,
                                 lambda v: _seccomp_type(v) in ok)
    if setters:
        pod_type = _seccomp_type((spec.get("securityContext") or {}).get("seccompProfile"))
        types = {pod_type} | {_seccomp_type(_sc(c).get("seccompProfile"))
                              for c in _containers(spec)}
        bad_types = sorted(t for t in types if t and t not in ok)
        return ("seccompProfile", f"{' and '.join(setters)} must not set "
                                  f"securityContext.seccompProfile.type to {_quote(bad_types)}")
    if implicit:
        return ("seccompProfile", f"pod or {_who(implicit)} must set securityContext.seccompProfile"
                                  '.type to "RuntimeDefault" or "Localhost"')
    return None


# check-ID order, as the evaluator runs them
BASELINE = [capabilities_baseline, host_namespaces, host_path_volumes, host_ports, privileged,
            seccomp_baseline]
RESTRICTED = [allow_privilege_escalation, capabilities_restricted, host_namespaces, host_ports,
              privileged, restricted_volumes, run_as_non_root, run_as_user, seccomp_restricted]


def violations(level: str, spec: Obj) -> list[tuple[str, str]]:
    checks = {"baseline": BASELINE, "restricted": RESTRICTED}.get(level, [])
    return [r for r in (check(spec) for check in checks) if r]


def _level(labels: dict[str, str], mode: str) -> tuple[str, str]:
    level = labels.get(f"pod-security.kubernetes.io/{mode}", "privileged")
    version = labels.get(f"pod-security.kubernetes.io/{mode}-version", "latest")
    return (level if level in LEVELS else "privileged"), version


def _summary(found: list[tuple[str, str]]) -> str:
    return ", ".join(f"{reason} ({detail})" for reason, detail in found)


def admit(namespace_labels: dict[str, str], pod: Obj) -> list[str]:
    """Enforce the namespace's level (raises Forbidden); return warnings for the `warn` level."""
    spec = pod.get("spec") or {}
    level, version = _level(namespace_labels, "enforce")
    found = violations(level, spec)
    if found:
        name = pod.get("metadata", {}).get("name")
        raise forbidden("pods", name,
                        f'violates PodSecurity "{level}:{version}": {_summary(found)}')
    warn_level, warn_version = _level(namespace_labels, "warn")
    warned = violations(warn_level, spec)
    if warned:
        return [f'would violate PodSecurity "{warn_level}:{warn_version}": {_summary(warned)}']
    return []
