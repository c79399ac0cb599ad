"""Decode the Kubernetes protobuf wire format for the bodies kubectl sends.

kubectl >= 1.32 sends create bodies (pods for `debug --copy-to` / `debug node/...`,
SelfSubjectAccessReviews, DeleteOptions) as `application/vnd.kubernetes.protobuf` and does not
fall back to JSON on a 415. The envelope is `k8s\\0` + `runtime.Unknown{typeMeta, raw}`; `raw` is
the object's message. Field numbers come from k8s.io/api `generated.proto` and are checked against
the raw bodies in ../shared/reference/kubectl (see test_double_protocol.py).

Field specs: (json name, type, flags). Types: s string, b bool, i int, by bytes, t Time,
q Quantity, ios IntOrString, m:<Msg> message, map / mapq (string -> string / Quantity).
Flags: r repeated, o optional (a Go pointer: kept even when zero), k keep an empty message,
x inline (an embedded struct whose fields JSON flattens into the parent).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

Spec = tuple[str, str, str]

_CONTAINER: dict[int, Spec] = {
    1: ("name", "s", ""), 2: ("image", "s", ""), 3: ("command", "s", "r"),
    4: ("args", "s", "r"), 5: ("workingDir", "s", ""), 6: ("ports", "m:ContainerPort", "r"),
    7: ("env", "m:EnvVar", "r"), 8: ("resources", "m:ResourceRequirements", "k"),
    9: ("volumeMounts", "m:VolumeMount", "r"), 10: ("livenessProbe", "m:Probe", ""),
    11: ("readinessProbe", "m:Probe", ""), 12: ("lifecycle", "m:Lifecycle", ""),
    13: ("terminationMessagePath", "s", ""), 14: ("imagePullPolicy", "s", ""),
    15: ("securityContext", "m:SecurityContext", ""), 16: ("stdin", "b", ""),
    17: ("stdinOnce", "b", ""), 18: ("tty", "b", ""), 19: ("envFrom", "m:EnvFromSource", "r"),
    20: ("terminationMessagePolicy", "s", ""), 22: ("startupProbe", "m:Probe", ""),
    24: ("restartPolicy", "s", "o"),
}

SCHEMA: dict[str, dict[int, Spec]] = {
    "Unknown": {1: ("typeMeta", "m:TypeMeta", ""), 2: ("raw", "by", ""),
                3: ("contentEncoding", "s", ""), 4: ("contentType", "s", "")},
    "TypeMeta": {1: ("apiVersion", "s", ""), 2: ("kind", "s", "")},
    "ObjectMeta": {
        1: ("name", "s", ""), 2: ("generateName", "s", ""), 3: ("namespace", "s", ""),
        5: ("uid", "s", ""), 6: ("resourceVersion", "s", ""), 7: ("generation", "i", ""),
        8: ("creationTimestamp", "t", ""), 9: ("deletionTimestamp", "t", ""),
        10: ("deletionGracePeriodSeconds", "i", "o"), 11: ("labels", "map", ""),
        12: ("annotations", "map", ""), 13: ("ownerReferences", "m:OwnerReference", "r"),
        14: ("finalizers", "s", "r"),
    },
    "OwnerReference": {1: ("kind", "s", ""), 3: ("name", "s", ""), 4: ("uid", "s", ""),
                       5: ("apiVersion", "s", ""), 6: ("controller", "b", "o"),
                       7: ("blockOwnerDeletion", "b", "o")},
    "Pod": {1: ("metadata", "m:ObjectMeta", "k"), 2: ("spec", "m:PodSpec", "k")},
    "Namespace": {1: ("metadata", "m:ObjectMeta", "k")},
    "PodSpec": {
        1: ("volumes", "m:Volume", "r"), 2: ("containers", "m:Container", "r"),
        3: ("restartPolicy", "s", ""), 4: ("terminationGracePeriodSeconds", "i", "o"),
        5: ("activeDeadlineSeconds", "i", "o"), 6: ("dnsPolicy", "s", ""),
        7: ("nodeSelector", "map", ""), 8: ("serviceAccountName", "s", ""),
        9: ("serviceAccount", "s", ""), 10: ("nodeName", "s", ""), 11: ("hostNetwork", "b", ""),
        12: ("hostPID", "b", ""), 13: ("hostIPC", "b", ""),
        14: ("securityContext", "m:PodSecurityContext", ""),
        15: ("imagePullSecrets", "m:LocalObjectReference", "r"), 16: ("hostname", "s", ""),
        17: ("subdomain", "s", ""), 19: ("schedulerName", "s", ""),
        20: ("initContainers", "m:Container", "r"),
        21: ("automountServiceAccountToken", "b", "o"), 22: ("tolerations", "m:Toleration", "r"),
        24: ("priorityClassName", "s", ""), 25: ("priority", "i", "o"),
        27: ("shareProcessNamespace", "b", "o"), 29: ("runtimeClassName", "s", "o"),
        30: ("enableServiceLinks", "b", "o"), 31: ("preemptionPolicy", "s", "o"),
        34: ("ephemeralContainers", "m:EphemeralContainer", "r"),
        35: ("setHostnameAsFQDN", "b", "o"), 37: ("hostUsers", "b", "o"),
    },
    "Container": _CONTAINER,
    "EphemeralContainer": {1: ("", "m:Container", "x"), 2: ("targetContainerName", "s", "")},
    "ContainerPort": {1: ("name", "s", ""), 2: ("hostPort", "i", ""),
                      3: ("containerPort", "i", ""), 4: ("protocol", "s", ""),
                      5: ("hostIP", "s", "")},
    "EnvVar": {1: ("name", "s", ""), 2: ("value", "s", ""), 3: ("valueFrom", "m:EnvVarSource", "")},
    "EnvVarSource": {1: ("fieldRef", "m:ObjectFieldSelector", ""),
                     3: ("configMapKeyRef", "m:KeySelector", ""),
                     4: ("secretKeyRef", "m:KeySelector", "")},
    "ObjectFieldSelector": {1: ("apiVersion", "s", ""), 2: ("fieldPath", "s", "")},
    "KeySelector": {1: ("", "m:LocalObjectReference", "x"), 2: ("key", "s", ""),
                    3: ("optional", "b", "o")},
    "EnvFromSource": {1: ("prefix", "s", ""), 2: ("configMapRef", "m:LocalObjectReference", ""),
                      3: ("secretRef", "m:LocalObjectReference", "")},
    "LocalObjectReference": {1: ("name", "s", "")},
    "ResourceRequirements": {1: ("limits", "mapq", ""), 2: ("requests", "mapq", "")},
    "VolumeMount": {1: ("name", "s", ""), 2: ("readOnly", "b", ""), 3: ("mountPath", "s", ""),
                    4: ("subPath", "s", ""), 5: ("mountPropagation", "s", "o"),
                    6: ("subPathExpr", "s", "")},
    "Probe": {1: ("", "m:ProbeHandler", "x"), 2: ("initialDelaySeconds", "i", ""),
              3: ("timeoutSeconds", "i", ""), 4: ("periodSeconds", "i", ""),
              5: ("successThreshold", "i", ""), 6: ("failureThreshold", "i", ""),
              7: ("terminationGracePeriodSeconds", "i", "o")},
    "ProbeHandler": {1: ("exec", "m:ExecAction", ""), 2: ("httpGet", "m:HTTPGetAction", ""),
                     3: ("tcpSocket", "m:TCPSocketAction", "")},
    "Lifecycle": {1: ("postStart", "m:ProbeHandler", ""), 2: ("preStop", "m:ProbeHandler", "")},
    "ExecAction": {1: ("command", "s", "r")},
    "HTTPGetAction": {1: ("path", "s", ""), 2: ("port", "ios", ""), 3: ("host", "s", ""),
                      4: ("scheme", "s", "")},
    "TCPSocketAction": {1: ("port", "ios", ""), 2: ("host", "s", "")},
    "SecurityContext": {
        1: ("capabilities", "m:Capabilities", ""), 2: ("privileged", "b", "o"),
        4: ("runAsUser", "i", "o"), 5: ("runAsNonRoot", "b", "o"),
        6: ("readOnlyRootFilesystem", "b", "o"), 7: ("allowPrivilegeEscalation", "b", "o"),
        8: ("runAsGroup", "i", "o"), 9: ("procMount", "s", "o"),
        11: ("seccompProfile", "m:SeccompProfile", ""),
        12: ("appArmorProfile", "m:SeccompProfile", ""),
    },
    "PodSecurityContext": {
        2: ("runAsUser", "i", "o"), 3: ("runAsNonRoot", "b", "o"),
        4: ("supplementalGroups", "i", "r"), 5: ("fsGroup", "i", "o"), 6: ("runAsGroup", "i", "o"),
        10: ("seccompProfile", "m:SeccompProfile", ""),
        11: ("appArmorProfile", "m:SeccompProfile", ""),
    },
    "Capabilities": {1: ("add", "s", "r"), 2: ("drop", "s", "r")},
    "SeccompProfile": {1: ("type", "s", ""), 2: ("localhostProfile", "s", "o")},
    "Volume": {1: ("name", "s", ""), 2: ("", "m:VolumeSource", "x")},
    "VolumeSource": {1: ("hostPath", "m:HostPathVolumeSource", "k"),
                     2: ("emptyDir", "m:EmptyDirVolumeSource", "k"),
                     6: ("secret", "m:SecretVolumeSource", "k"),
                     10: ("persistentVolumeClaim", "m:PVCSource", "k"),
                     19: ("configMap", "m:ConfigMapVolumeSource", "k")},
    "HostPathVolumeSource": {1: ("path", "s", ""), 2: ("type", "s", "o")},
    "EmptyDirVolumeSource": {1: ("medium", "s", ""), 2: ("sizeLimit", "q", "")},
    "SecretVolumeSource": {1: ("secretName", "s", ""), 3: ("defaultMode", "i", "o"),
                           4: ("optional", "b", "o")},
    "PVCSource": {1: ("claimName", "s", ""), 2: ("readOnly", "b", "")},
    "ConfigMapVolumeSource": {1: ("", "m:LocalObjectReference", "x"), 3: ("defaultMode", "i", "o"),
                              4: ("optional", "b", "o")},
    "Toleration": {1: ("key", "s", ""), 2: ("operator", "s", ""), 3: ("value", "s", ""),
                   4: ("effect", "s", ""), 5: ("tolerationSeconds", "i", "o")},
    "SelfSubjectAccessReview": {1: ("metadata", "m:ObjectMeta", "k"),
                                2: ("spec", "m:SSARSpec", "k")},
    "SSARSpec": {1: ("resourceAttributes", "m:ResourceAttributes", ""),
                 2: ("nonResourceAttributes", "m:NonResourceAttributes", "")},
    "ResourceAttributes": {1: ("namespace", "s", ""), 2: ("verb", "s", ""), 3: ("group", "s", ""),
                           4: ("version", "s", ""), 5: ("resource", "s", ""),
                           6: ("subresource", "s", ""), 7: ("name", "s", "")},
    "NonResourceAttributes": {1: ("path", "s", ""), 2: ("verb", "s", "")},
    "DeleteOptions": {1: ("gracePeriodSeconds", "i", "o"),
                      2: ("preconditions", "m:Preconditions", ""),
                      3: ("orphanDependents", "b", "o"), 4: ("propagationPolicy", "s", "o"),
                      5: ("dryRun", "s", "r")},
    "Preconditions": {1: ("uid", "s", "o"), 2: ("resourceVersion", "s", "o")},
    "Time": {1: ("seconds", "i", ""), 2: ("nanos", "i", "")},
    "Quantity": {1: ("string", "s", "")},
    "IntOrString": {1: ("type", "i", ""), 2: ("intVal", "i", ""), 3: ("strVal", "s", "")},
    "MapEntry": {1: ("key", "s", ""), 2: ("value", "by", "")},
}

MAGIC = b"k8s\x00"


class ProtobufError(ValueError):
    pass


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ProtobufError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> list[tuple[int, int, Any]]:
    out, pos = [], 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        num, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + size], pos + size
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        out.append((num, wire, value))
    return out


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _scalar(kind: str, value: Any) -> Any:
    if kind == "s":
        return bytes(value).decode()
    if kind == "b":
        return bool(value)
    if kind == "i":
        return _signed(value)
    if kind == "by":
        return bytes(value)
    if kind == "t":
        parts = decode_message("Time", value)
        if not parts.get("seconds"):
            return None
        stamp = dt.datetime.fromtimestamp(parts["seconds"], dt.UTC)
        return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    if kind == "q":
        return decode_message("Quantity", value).get("string", "")
    if kind == "ios":
        parts = decode_message("IntOrString", value)
        return parts.get("strVal", "") if parts.get("type") == 1 else parts.get("intVal", 0)
    raise ProtobufError(f"unknown scalar type {kind}")


def _is_zero(value: Any) -> bool:
    return value in ("", 0, None, b"")


def decode_message(name: str, buf: bytes) -> dict[str, Any]:
    """Decode one message into its JSON form (zero values of non-pointer fields dropped)."""
    schema = SCHEMA[name]
    out: dict[str, Any] = {}
    for num, _wire, raw in _fields(buf):
        spec = schema.get(num)
        if spec is None:
            continue  # a field the double does not model: dropped, like an unknown JSON field
        key, kind, flags = spec
        if kind.startswith("m:"):
            value: Any = decode_message(kind[2:], raw)
            if "x" in flags:
                out.update(value)
                continue
            if not value and "k" not in flags and "r" not in flags:
                continue
        elif kind in ("map", "mapq"):
            entry = decode_message("MapEntry", raw)
            val = entry.get("value", b"")
            decoded = _scalar("q", val) if kind == "mapq" else bytes(val).decode()
            out.setdefault(key, {})[entry.get("key", "")] = decoded
            continue
        elif "r" in flags and kind == "i" and _wire == 2:
            # packed repeated varints
            pos, vals = 0, []
            while pos < len(raw):
                v, pos = _varint(raw, pos)
                vals.append(_signed(v))
            out.setdefault(key, []).extend(vals)
            continue
        else:
            value = _scalar(kind, raw)
            if "o" not in flags and "r" not in flags and _is_zero(value):
                continue
            if value is None:
                continue
        if "r" in flags:
            out.setdefault(key, []).append(value)
        else:
            out[key] = value
    return out


def decode_object(body: bytes) -> dict[str, Any]:
    """Decode a `k8s\\0`-framed body into a JSON-style object with apiVersion and kind."""
    if not body.startswith(MAGIC):
        raise ProtobufError("missing k8s protobuf magic prefix")
    unknown = decode_message("Unknown", body[len(MAGIC) :])
    type_meta = unknown.get("typeMeta", {})
    kind = type_meta.get("kind", "")
    if kind not in SCHEMA:
        raise ProtobufError(f"the double cannot decode protobuf kind {kind!r}")
    obj: dict[str, Any] = {"apiVersion": type_meta.get("apiVersion", ""), "kind": kind}
    obj.update(decode_message(kind, unknown.get("raw", b"")))
    return obj
