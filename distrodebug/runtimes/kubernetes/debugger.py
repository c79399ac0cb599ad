"""The debugger's life on Kubernetes: an ephemeral container, a copy of the pod, or a node pod.

Created, waited for with a bounded watch (fatal kubelet states end the wait at once), attached
or exec'd over WebSocket, and, for the pods we create, deleted when the session ends.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from distrodebug.errors import SidecarFailed, TargetNotDebuggable
from distrodebug.model import SidecarSpec, TargetInfo
from distrodebug.runtimes.kubernetes import errors as kubeerrors
from distrodebug.runtimes.kubernetes import pods as kubepods
from distrodebug.runtimes.kubernetes.client import KubeClient
from distrodebug.runtimes.kubernetes.profiles import KubeChoice
from distrodebug.runtimes.kubernetes.spec import (
    all_names,
    container_status,
    debugger_name,
    ephemeral_container,
    long_script_on_stdin,
)
from distrodebug.runtimes.kubernetes.stream import WebSocketStream, connect, exit_code_from_status

#: Waiting reasons the kubelet will not get out of by itself in the time we wait.
FATAL_WAITING = {"ErrImagePull", "ImagePullBackOff", "CreateContainerConfigError",
                 "InvalidImageName", "CreateContainerError", "RunContainerError", "ErrImageNeverPull"}
#: How long an exec debugger idles, waiting for more `exec` calls to reuse it, before it exits.
IDLE_SECONDS = 600
#: How long a pod copy or node pod may live before `cleanup` deletes it, if a session crashed.
EXPIRY = timedelta(hours=2)


class KubeSidecar:
    """A debugger container and the stream attached to it; `remove` deletes pods we created."""

    def __init__(self, kube: KubeClient, pod: str, name: str, exec_mode: bool,
                 created_pod: bool = False, keep: bool = False) -> None:
        self._kube = kube
        self.pod = pod
        self.name = name
        self.id = f"{kube.namespace}/{pod}/{name}"
        self._stream: WebSocketStream | None = None
        self.exec_mode = exec_mode
        self.created_pod = created_pod
        self.keep = keep
        self.notes: list[str] = []

    def attach(self, stream: WebSocketStream) -> None:
        """The stream to the debugger's process, once connected."""
        self._stream = stream

    @property
    def stream(self) -> WebSocketStream | None:
        return self._stream

    def resize(self, rows: int, cols: int) -> None:
        if self._stream is not None:
            self._stream.resize(rows, cols)

    def wait(self) -> int:
        if self.exec_mode:
            code = exit_code_from_status(self._stream.status if self._stream else None)
            return 125 if code is None else code
        deadline = time.monotonic() + 10
        time.sleep(0.3)  # the kubelet reports the exit a moment after the stream closes
        while time.monotonic() < deadline:
            pod = self._kube.read_pod(self.pod)
            state = (container_status(pod, self.name) or {}).get("state") or {}
            if state.get("terminated"):
                code = int(state["terminated"].get("exitCode", 0))
                if not self.created_pod:
                    self.notes.append(f"debug container {self.name} exited with status {code}; "
                                      "ephemeral containers stay listed in the pod but hold nothing")
                return code
            time.sleep(0.2)
        self.notes.append(
            f"the debugger {self.name} is still running: reattach with 'kubectl attach "
            f"{self.pod} -c {self.name} -i -t -n {self._kube.namespace}'")
        return 0

    def remove(self) -> None:
        # Ephemeral containers cannot be removed; closing the stream ends a stdinOnce debugger.
        if self._stream is not None:
            self._stream.close_write()
            self._stream.close()
        if self.created_pod:
            if self.keep:
                self.notes.append(f"kept pod {self.pod}; delete it with 'kubectl delete pod "
                                  f"{self.pod} -n {self._kube.namespace}' or 'distrodebug cleanup "
                                  "--kubernetes'")
            else:
                self._kube.delete_pod(self.pod)


def start(kube: KubeClient, spec: SidecarSpec, info: TargetInfo) -> KubeSidecar:
    """An ephemeral debugger (join), a copy of the pod (snapshot) or a node pod (node)."""
    if spec.mode == "snapshot":
        return _start_pod(kube, spec, info, _copy_manifest(spec, info))
    if spec.mode == "node":
        return _start_pod(kube, spec, info, _node_manifest(spec, info))
    return _start_ephemeral(kube, spec, info)


def _expiry() -> str:
    return (datetime.now(UTC) + EXPIRY).strftime("%Y-%m-%dT%H:%M:%SZ")


def _choice(spec: SidecarSpec) -> KubeChoice:
    ctx = dict(spec.security_context or {})
    return KubeChoice(spec.profile or "auto", ctx or None, "chroot", "")


def _copy_manifest(spec: SidecarSpec, info: TargetInfo) -> dict[str, Any]:
    name = f"{info.name[:40]}-debug-{debugger_name(set()).rsplit('-', 1)[-1]}"
    return kubepods.pod_copy(
        info.raw, info.container, name=name, debug_image=spec.image, choice=_choice(spec),
        env={**spec.env, "DD_GO": "1"}, argv=spec.argv, labels=spec.labels, expires=_expiry(),
        set_image=dict(spec.options.set_image) or None, tty=spec.tty, stdin=True)


def _node_manifest(spec: SidecarSpec, info: TargetInfo) -> dict[str, Any]:
    manifest = kubepods.node_pod(
        info.name, name=kubepods.node_pod_name(info.name), debug_image=spec.image,
        profile=spec.options.profile, argv=spec.argv, env={**spec.env, "DD_GO": "1"}, labels=spec.labels,
        tty=spec.tty, stdin=True)
    manifest["metadata"].setdefault("annotations", {})[kubepods.ANNOTATION_EXPIRES] = _expiry()
    container = manifest["spec"]["containers"][0]
    ctx = container.get("securityContext") or {}
    if ctx.get("runAsNonRoot") and "runAsUser" not in ctx:
        # kubectl's restricted node pod never starts with a root image; name a non-root uid.
        ctx["runAsUser"] = kubepods.DISTROLESS_NONROOT
    return manifest


def _start_pod(kube: KubeClient, spec: SidecarSpec, info: TargetInfo,
               manifest: dict[str, Any]) -> KubeSidecar:
    """Create a pod of ours (copy or node pod), wait for its debugger, attach to it."""
    pod_name = manifest["metadata"]["name"]
    container = info.container if spec.mode == "snapshot" else manifest["spec"]["containers"][0]["name"]
    created = kube.create_pod(manifest)
    sidecar = KubeSidecar(kube, pod_name, container, exec_mode=False, created_pod=True,
                          keep=spec.options.keep)
    try:
        wait_running(kube, pod_name, container, created["metadata"]["resourceVersion"],
                     spec.options.timeout)
        base = kube.pods_path(pod_name)
        query = [("container", container), ("stdin", "true"), ("stdout", "true")]
        query += [("tty", "true")] if spec.tty else [("stderr", "true")]
        with kube.calls(f"attaching to {container} in {pod_name}", pod_name):
            stream = connect(kube.configuration, f"{base}/attach", query)
            sidecar.attach(stream)
            if not spec.tty:
                # The entry script waits for this line (DD_GO) so no output is lost before we
                # attached; the interactive session sends its own.
                stream.send(b"\n")
                if not spec.stdin:
                    stream.close_write()
    except BaseException:
        sidecar.remove()
        raise
    return sidecar


def _reusable(pod: Mapping[str, Any], spec: SidecarSpec) -> str | None:
    """A running debugger of ours in this pod with the same image and securityContext."""
    for item in (pod.get("spec") or {}).get("ephemeralContainers") or []:
        if not item["name"].startswith("distrodebug-") or item.get("image") != spec.image:
            continue
        if (item.get("securityContext") or None) != (dict(spec.security_context or {}) or None):
            continue
        if item.get("tty") or item.get("stdin"):
            continue  # an interactive session's debugger, not an idle one
        state = (container_status(pod, item["name"]) or {}).get("state") or {}
        if state.get("running"):
            return str(item["name"])
    return None


def _start_ephemeral(kube: KubeClient, spec: SidecarSpec, info: TargetInfo) -> KubeSidecar:
    exec_mode = not spec.tty
    reuse = spec.options.reuse
    pod = info.raw
    name = _reusable(pod, spec) if (exec_mode or reuse) else None
    if name is None:
        name = debugger_name(all_names(pod))
        body_spec = spec
        if exec_mode:
            idle = (spec.argv[0],) if spec.argv[0].endswith("reaper") else ()
            body_spec = dataclasses.replace(spec, argv=(*idle, "sleep", str(IDLE_SECONDS)),
                                            stdin=False)
        body = ephemeral_container(body_spec, name, info.container, spec.security_context)
        patched = kube.add_ephemeral(info.name, body)
        wait_running(kube, info.name, name, patched["metadata"]["resourceVersion"],
                     spec.options.timeout)
    sidecar = KubeSidecar(kube, info.name, name, exec_mode or reuse)
    base = kube.pods_path(info.name)
    preamble = b""
    if sidecar.exec_mode:
        argv, preamble = long_script_on_stdin(spec.argv[1 if spec.argv[0].endswith("reaper") else 0:],
                                              spec.stdin)
        query = [("container", name), ("stdout", "true")]
        query += [("command", word) for word in argv]
        query += [("stdin", "true")] if spec.stdin or preamble else []
        query += [("tty", "true")] if spec.tty else [("stderr", "true")]
        path = f"{base}/exec"
    else:
        query = [("container", name), ("stdin", "true"), ("stdout", "true"), ("tty", "true")]
        path = f"{base}/attach"
    with kube.calls(f"attaching to {name}", info.name):
        stream = connect(kube.configuration, path, query)
        sidecar.attach(stream)
        if preamble:
            stream.send(preamble)
    return sidecar


def wait_running(kube: KubeClient, pod: str, name: str, resource_version: str,
                 timeout: float) -> None:
    """Until container ``name`` of ``pod`` runs (or ran), bounded by ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    with kube.calls(f"waiting for {name}", pod):
        while time.monotonic() < deadline:
            for event in kube.watch_pod(pod, resource_version, deadline - time.monotonic()):
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":
                    resource_version = ""  # too old: start over from the current state
                    break
                resource_version = obj.get("metadata", {}).get("resourceVersion", resource_version)
                if event.get("type") == "DELETED":
                    raise TargetNotDebuggable(f"Pod '{pod}' was deleted while we waited.", "")
                if event.get("type") != "BOOKMARK" and _ready(obj, name, kube.namespace):
                    return
    raise SidecarFailed(
        f"The debug container {name} did not start within {timeout:.0f} seconds.",
        f"See 'kubectl describe pod {pod} -n {kube.namespace}'; raise the wait with --timeout.",
    )


def _ready(pod: Mapping[str, Any], name: str, namespace: str) -> bool:
    state = (container_status(pod, name) or {}).get("state") or {}
    if state.get("running") or state.get("terminated"):
        return True
    status = pod.get("status") or {}
    for key in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
        for item in status.get(key) or []:
            waiting = (item.get("state") or {}).get("waiting") or {}
            if (item.get("name") == name or key == "initContainerStatuses") and waiting.get(
                    "reason") in FATAL_WAITING:
                raise kubeerrors.waiting_failed(item["name"], waiting, pod["metadata"]["name"],
                                                namespace)
            terminated = (item.get("state") or {}).get("terminated") or {}
            if key == "initContainerStatuses" and terminated.get("exitCode", 0) != 0:
                raise SidecarFailed(
                    f"The init container {item['name']} of {pod['metadata']['name']} failed "
                    f"({terminated.get('reason', 'Error')}: {terminated.get('message', '')}).",
                    f"See 'kubectl logs {pod['metadata']['name']} -c {item['name']} -n {namespace}'.")
    return False


__all__ = ["IDLE_SECONDS", "KubeSidecar", "start", "wait_running"]
