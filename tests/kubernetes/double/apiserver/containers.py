"""Pure translation of a pod's containers into Docker Engine `create` bodies.

Mapping (as dockershim did it): one infra ("pause") container per pod owns the network and IPC
namespaces (IPC `shareable`, so others can join) and, with `shareProcessNamespace`, is PID 1 of the
shared PID namespace. App containers join its network and IPC; an ephemeral container with
`targetContainerName` joins the target's PID namespace. k8s `command` is Docker's Entrypoint and
`args` its Cmd, which keeps the image's defaults exactly where Kubernetes keeps them.
"""

from __future__ import annotations

import re
from typing import Any

Obj = dict[str, Any]

LABEL_TEST = "io.distrodebug.test"
LABEL_DOUBLE = "io.distrodebug.k8s-double"
LABEL_POD = "io.distrodebug.k8s-double.pod"
LABEL_CONTAINER = "io.distrodebug.k8s-double.container"
LABEL_UID = "io.distrodebug.k8s-double.uid"
INFRA = "POD"  # dockershim's name for the sandbox container


def labels(double_id: str, pod: Obj, container: str) -> dict[str, str]:
    meta = pod["metadata"]
    return {
        LABEL_TEST: "1",
        LABEL_DOUBLE: double_id,
        LABEL_POD: f"{meta['namespace']}/{meta['name']}",
        LABEL_CONTAINER: container,
        LABEL_UID: meta["uid"],
    }


def docker_name(pod: Obj, container: str, attempt: int) -> str:
    meta = pod["metadata"]
    return f"k8s_{container}_{meta['name']}_{meta['namespace']}_{meta['uid']}_{attempt}"


def volume_name(double_id: str, pod: Obj, volume: str) -> str:
    return f"k8sdouble-{double_id}-{pod['metadata']['uid'][:8]}-{volume}"


def effective_security(pod: Obj, c: Obj) -> Obj:
    """DetermineEffectiveSecurityContext: container settings over the pod's."""
    pod_sc = pod["spec"].get("securityContext") or {}
    sc = dict(c.get("securityContext") or {})
    for key in ("runAsUser", "runAsGroup", "runAsNonRoot", "seccompProfile"):
        if sc.get(key) is None and pod_sc.get(key) is not None:
            sc[key] = pod_sc[key]
    return sc


def format_pod(pod: Obj) -> str:
    meta = pod["metadata"]
    return f"{meta['name']}_{meta['namespace']}({meta['uid']})"


def verify_non_root(pod: Obj, c: Obj, image_user: str) -> str | None:
    """The kubelet's verifyRunAsNonRoot: the CreateContainerConfigError message, or None."""
    sc = effective_security(pod, c)
    if not sc.get("runAsNonRoot"):
        return None
    who = f'(pod: "{format_pod(pod)}", container: {c["name"]})'
    if sc.get("runAsUser") is not None:
        if sc["runAsUser"] == 0:
            return f"container's runAsUser breaks non-root policy {who}"
        return None
    user = (image_user or "").split(":", 1)[0]
    if user == "" or user == "0":
        return f"container has runAsNonRoot and image will run as root {who}"
    if not user.isdigit():
        return (f"container has runAsNonRoot and image has non-numeric user ({user}), cannot "
                f"verify user is non-root {who}")
    return None


_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)|\$\$")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion in command, args and env values; $$ escapes."""
    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _REF.sub(sub, text)


def environment(pod: Obj, c: Obj, pod_ip: str, host_ip: str) -> dict[str, str]:
    meta, spec = pod["metadata"], pod["spec"]
    fields = {
        "metadata.name": meta["name"], "metadata.namespace": meta["namespace"],
        "metadata.uid": meta["uid"], "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": pod_ip, "status.hostIP": host_ip,
    }
    env: dict[str, str] = {}
    for var in c.get("env") or []:
        ref = ((var.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
        if ref:
            env[var["name"]] = fields.get(ref, "")
        else:
            env[var["name"]] = expand(var.get("value", ""), env)
    return env


def _user(sc: Obj, image_user: str) -> str | None:
    uid, gid = sc.get("runAsUser"), sc.get("runAsGroup")
    if uid is None and gid is None:
        return None
    base = str(uid) if uid is not None else (image_user.split(":", 1)[0] or "0")
    return f"{base}:{gid}" if gid is not None else base


def _mounts(double_id: str, pod: Obj, c: Obj) -> list[str]:
    volumes = {v["name"]: v for v in pod["spec"].get("volumes") or []}
    binds = []
    for vm in c.get("volumeMounts") or []:
        vol = volumes.get(vm["name"], {})
        mode = "ro" if vm.get("readOnly") else "rw"
        if "hostPath" in vol:
            source = vol["hostPath"]["path"].rstrip("/") or "/"
            if vm.get("subPath"):
                source = f"{source.rstrip('/')}/{vm['subPath']}"
        elif "emptyDir" in vol:
            source = volume_name(double_id, pod, vm["name"])
        else:
            continue  # configMap, secret, projected...: not modelled by the double
        binds.append(f"{source}:{vm['mountPath']}:{mode}")
    return binds


def infra_body(double_id: str, pod: Obj, image: str, command: list[str]) -> Obj:
    spec = pod["spec"]
    host_config: Obj = {
        "NetworkMode": "host" if spec.get("hostNetwork") else "bridge",
        "IpcMode": "host" if spec.get("hostIPC") else "shareable",
        "PidMode": "host" if spec.get("hostPID") else "",
        "LogConfig": {"Type": "none"},
    }
    body: Obj = {
        "Image": image, "Entrypoint": command[:1], "Cmd": command[1:],
        # the pause container runs as 65535 too; it needs no privileges
        "User": "65535:65535",
        "Labels": labels(double_id, pod, INFRA), "HostConfig": host_config,
    }
    if not spec.get("hostNetwork"):
        body["Hostname"] = spec.get("hostname") or pod["metadata"]["name"][:63]
    return body


def container_body(double_id: str, pod: Obj, c: Obj, *, infra_id: str, target_id: str | None,
                   image_user: str, pod_ip: str, host_ip: str) -> Obj:
    """Create body for an app, init or ephemeral container."""
    spec = pod["spec"]
    sc = effective_security(pod, c)
    env = environment(pod, c, pod_ip, host_ip)
    if spec.get("hostPID"):
        pid_mode = "host"
    elif spec.get("shareProcessNamespace"):
        pid_mode = f"container:{infra_id}"
    elif target_id:
        pid_mode = f"container:{target_id}"
    else:
        pid_mode = ""
    security_opt = []
    seccomp = (sc.get("seccompProfile") or {}).get("type")
    if seccomp not in ("RuntimeDefault", "Localhost"):
        # Kubernetes runs containers Unconfined unless a profile is asked for (no SeccompDefault).
        security_opt.append("seccomp=unconfined")
    if sc.get("allowPrivilegeEscalation") is False:
        security_opt.append("no-new-privileges")
    caps = sc.get("capabilities") or {}
    groups = (spec.get("securityContext") or {}).get("supplementalGroups") or []
    host_config: Obj = {
        "NetworkMode": "host" if spec.get("hostNetwork") else f"container:{infra_id}",
        "IpcMode": "host" if spec.get("hostIPC") else f"container:{infra_id}",
        "PidMode": pid_mode,
        "CapAdd": list(caps.get("add") or []) or None,
        "CapDrop": list(caps.get("drop") or []) or None,
        "Privileged": bool(sc.get("privileged")),
        "ReadonlyRootfs": bool(sc.get("readOnlyRootFilesystem")),
        "SecurityOpt": security_opt or None,
        "Binds": _mounts(double_id, pod, c) or None,
        "GroupAdd": [str(g) for g in groups] or None,
        "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m"}},
    }
    command = [expand(a, env) for a in c.get("command") or []]
    args = [expand(a, env) for a in c.get("args") or []]
    body: Obj = {
        "Image": c["image"],
        "Entrypoint": command or None,
        "Cmd": args or None,
        "Env": [f"{k}={v}" for k, v in env.items()],
        "WorkingDir": c.get("workingDir", ""),
        "User": _user(sc, image_user),
        "Tty": bool(c.get("tty")),
        "OpenStdin": bool(c.get("stdin")),
        "StdinOnce": bool(c.get("stdin")) and bool(c.get("stdinOnce")),
        "AttachStdin": False, "AttachStdout": False, "AttachStderr": False,
        "Labels": labels(double_id, pod, c["name"]),
        "HostConfig": host_config,
    }
    if command and not args:
        body["Cmd"] = []  # an explicit command drops the image's CMD, as in Kubernetes
    return body


def normalize_image(image: str) -> tuple[str, str]:
    """(fully qualified reference, registry host) the way containerd spells them."""
    name, digest = (image.split("@", 1) + [""])[:2]
    first = name.split("/", 1)[0]
    has_registry = "/" in name and ("." in first or ":" in first or first == "localhost")
    if not has_registry:
        name = f"docker.io/{name}" if "/" in name else f"docker.io/library/{name}"
    last = name.rsplit("/", 1)[-1]
    if ":" not in last and not digest:
        name += ":latest"
    full = f"{name}@{digest}" if digest else name
    registry = name.split("/", 1)[0]
    return full, "registry-1.docker.io" if registry == "docker.io" else registry


def pull_error(image: str) -> str:
    full, registry = normalize_image(image)
    repo_tag = full.split("/", 1)[1]
    repo, _, tag = repo_tag.rpartition(":") if "@" not in repo_tag else (repo_tag, "", "")
    return (f'Failed to pull image "{image}": failed to pull and unpack image "{full}": failed '
            f'to resolve reference "{full}": failed to do request: Head '
            f'"https://{registry}/v2/{repo}/manifests/{tag}": dial tcp: lookup {registry}: '
            "no such host")
