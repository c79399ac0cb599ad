"""Pod defaulting and the validation rules of `pkg/apis/core/validation` that clients meet.

Only what a debugging tool can trip over is validated: names, images, duplicate container names,
volume references, and the ephemeral-container rules of `ValidatePodEphemeralContainersUpdate`
(existing ones may not be removed or changed, forbidden fields, unique names, an existing
`targetContainerName`). The texts match kube-apiserver's, including the trailing newline and the
diff of the "may not be changed" message (the diff itself is simplified).
"""

from __future__ import annotations

import json
import re
import secrets
import uuid
from typing import Any

from .status import FieldError

Obj = dict[str, Any]

LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
# kubectl's name suffix alphabet (apimachinery util/rand): no vowels, no 0/1/3.
RAND_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

# Fields of EphemeralContainerCommon outside `allowedEphemeralContainerFields`, in struct order.
EPHEMERAL_FORBIDDEN = (
    "ports",
    "resources",
    "resizePolicy",
    "restartPolicy",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
)


def rand_suffix(n: int = 5) -> str:
    return "".join(secrets.choice(RAND_ALPHABET) for _ in range(n))


def new_uid() -> str:
    return str(uuid.uuid4())


def default_pull_policy(image: str) -> str:
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else ""
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def _default_probe(probe: Obj | None) -> None:
    if not probe:
        return
    probe.setdefault("timeoutSeconds", 1)
    probe.setdefault("periodSeconds", 10)
    probe.setdefault("successThreshold", 1)
    probe.setdefault("failureThreshold", 3)
    if "httpGet" in probe:
        probe["httpGet"].setdefault("path", "/")
        probe["httpGet"].setdefault("scheme", "HTTP")


def default_container(c: Obj) -> None:
    c.setdefault("resources", {})
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    if c.get("image"):
        c.setdefault("imagePullPolicy", default_pull_policy(c["image"]))
    for port in c.get("ports") or []:
        port.setdefault("protocol", "TCP")
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        _default_probe(c.get(key))


def default_pod(pod: Obj, namespace: str, now: str) -> None:
    """SetDefaults_Pod / PodSpec / Container plus what admission adds (service account)."""
    pod["apiVersion"], pod["kind"] = "v1", "Pod"
    meta = pod.setdefault("metadata", {})
    if not meta.get("name") and meta.get("generateName"):
        meta["name"] = meta["generateName"] + rand_suffix()
    meta["namespace"] = namespace
    meta["uid"] = new_uid()
    meta["creationTimestamp"] = now
    for key in ("resourceVersion", "deletionTimestamp", "selfLink", "generation"):
        meta.pop(key, None)
    spec = pod.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("serviceAccountName", "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault("priority", 0)
    tolerations = spec.setdefault("tolerations", [])
    for taint in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        # DefaultTolerationSeconds admission, unless the pod tolerates everything already.
        if not any(t.get("key") in (taint, None, "") and t.get("operator") == "Exists"
                   for t in tolerations):
            tolerations.append({"key": taint, "operator": "Exists", "effect": "NoExecute",
                                "tolerationSeconds": 300})
    for kind in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(kind) or []:
            default_container(c)
    pod["status"] = {"phase": "Pending", "qosClass": "BestEffort"}


def _container_names(spec: Obj, kinds: tuple[str, ...]) -> list[str]:
    return [c.get("name", "") for k in kinds for c in spec.get(k) or []]


def _validate_container(c: Obj, path: str, seen: set[str], volumes: set[str]) -> list[FieldError]:
    errs: list[FieldError] = []
    name = c.get("name", "")
    if not name:
        errs.append(FieldError("Required", f"{path}.name"))
    elif not LABEL_RE.match(name) or len(name) > 63:
        errs.append(FieldError("Invalid", f"{path}.name", LABEL_MSG, name))
    elif name in seen:
        errs.append(FieldError("Duplicate", f"{path}.name", value=name))
    seen.add(name)
    if not c.get("image"):
        errs.append(FieldError("Required", f"{path}.image"))
    for i, vm in enumerate(c.get("volumeMounts") or []):
        if vm.get("name") not in volumes:
            errs.append(FieldError("NotFound", f"{path}.volumeMounts[{i}].name",
                                   value=vm.get("name")))
        if not vm.get("mountPath"):
            errs.append(FieldError("Required", f"{path}.volumeMounts[{i}].mountPath"))
    policy = c.get("imagePullPolicy")
    if policy and policy not in ("Always", "IfNotPresent", "Never"):
        errs.append(FieldError(
            "NotSupported", f"{path}.imagePullPolicy",
            'supported values: "Always", "IfNotPresent", "Never"', policy))
    return errs


def validate_pod(pod: Obj) -> list[FieldError]:
    errs: list[FieldError] = []
    meta, spec = pod.get("metadata", {}), pod.get("spec", {})
    name = meta.get("name", "")
    if not name:
        errs.append(FieldError("Required", "metadata.name", "name or generateName is required"))
    elif not SUBDOMAIN_RE.match(name) or len(name) > 253:
        errs.append(FieldError("Invalid", "metadata.name", SUBDOMAIN_MSG, name))
    volumes: set[str] = set()
    for i, v in enumerate(spec.get("volumes") or []):
        if v.get("name") in volumes:
            errs.append(FieldError("Duplicate", f"spec.volumes[{i}].name", value=v.get("name")))
        volumes.add(v.get("name", ""))
    if not spec.get("containers"):
        errs.append(FieldError("Required", "spec.containers"))
    seen: set[str] = set()
    for kind in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(kind) or []):
            errs += _validate_container(c, f"spec.{kind}[{i}]", seen, volumes)
    errs += _validate_ephemeral(spec, volumes)
    policy = spec.get("restartPolicy")
    if policy not in ("Always", "OnFailure", "Never"):
        errs.append(FieldError("NotSupported", "spec.restartPolicy",
                               'supported values: "Always", "OnFailure", "Never"', policy))
    return errs


def _validate_ephemeral(spec: Obj, volumes: set[str]) -> list[FieldError]:
    errs: list[FieldError] = []
    others = set(_container_names(spec, ("initContainers", "containers")))
    seen = set(others)
    for i, ec in enumerate(spec.get("ephemeralContainers") or []):
        path = f"spec.ephemeralContainers[{i}]"
        errs += _validate_container(ec, path, seen, volumes)
        for key in EPHEMERAL_FORBIDDEN:
            if ec.get(key):
                errs.append(FieldError("Forbidden", f"{path}.{key}",
                                       "cannot be set for an Ephemeral Container"))
        for j, vm in enumerate(ec.get("volumeMounts") or []):
            for key in ("subPath", "subPathExpr"):
                if vm.get(key):
                    errs.append(FieldError("Forbidden", f"{path}.volumeMounts[{j}].{key}",
                                           "cannot be set for an Ephemeral Container"))
        target = ec.get("targetContainerName")
        if target and target not in others:
            errs.append(FieldError("NotFound", f"{path}.targetContainerName", value=target))
    return errs


def _diff(old: Obj, new: Obj) -> str:
    lines = ["  core.EphemeralContainer{"]
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            if key in old:
                lines.append(f"- \t{key}: {json.dumps(old[key], sort_keys=True)},")
            if key in new:
                lines.append(f"+ \t{key}: {json.dumps(new[key], sort_keys=True)},")
    lines.append("  }")
    return "\n".join(lines) + "\n"


def validate_ephemeral_update(old: Obj, new: Obj) -> list[FieldError]:
    """ValidatePodEphemeralContainersUpdate: new spec valid, nothing existing removed or changed."""
    if (old.get("metadata", {}).get("annotations") or {}).get("kubernetes.io/config.mirror"):
        return [FieldError("Forbidden", "", "static pods do not support ephemeral containers")]
    spec = new.get("spec", {})
    volumes = {v.get("name", "") for v in spec.get("volumes") or []}
    errs = _validate_ephemeral(spec, volumes)
    new_index = {ec.get("name"): ec for ec in spec.get("ephemeralContainers") or []}
    for ec in old.get("spec", {}).get("ephemeralContainers") or []:
        name = ec.get("name")
        if name not in new_index:
            errs.append(FieldError("Forbidden", "spec.ephemeralContainers",
                                   f'existing ephemeral containers "{name}" may not be removed\n'))
        elif new_index[name] != ec:
            errs.append(FieldError(
                "Forbidden", f"spec.ephemeralContainers[{name}]",
                f'existing ephemeral containers "{name}" may not be changed\n'
                + _diff(ec, new_index[name])))
    return errs
