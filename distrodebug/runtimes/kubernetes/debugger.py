"""The debugger's life on Kubernetes: an ephemeral container, a copy of the pod, or a node pod.

Created, waited for with a bounded watch (states the kubelet will not leave end the wait at
once, with its reason), attached or exec'd over WebSocket, and, for the pods we create, deleted
when the session ends. Ephemeral containers can never be removed, so the exec debugger is
shared: later `exec`, `cp` and `dump` calls made for the same request (same image, privileges,
target container and scripts) reuse it, it exits by itself after a spell without any exec in
it (``debugger_idle``), and a pod never gets more than ``max_debuggers`` of ours (settings.py).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from distrodebug.errors import DistrodebugError, SidecarFailed, TargetNotDebuggable, UsageError
from distrodebug.model import SidecarSpec, TargetInfo
from distrodebug.runtimes.kubernetes import errors as kubeerrors
from distrodebug.runtimes.kubernetes import pods as kubepods
from distrodebug.runtimes.kubernetes.client import KubeClient
from distrodebug.runtimes.kubernetes.profiles import PROFILE_CONTEXT, KubeChoice
from distrodebug.runtimes.kubernetes.spec import (
    all_names,
    container_status,
    debugger_name,
    env_value,
    ephemeral_container,
    long_script_on_stdin,
    merge_custom,
    request_hash,
)
from distrodebug.runtimes.kubernetes.stream import V5, WebSocketStream, connect, exit_code_from_status

#: Waiting reasons the kubelet will not get out of by itself in the time we wait.
FATAL_WAITING = {"ErrImagePull", "ImagePullBackOff", "CreateContainerConfigError",
                 "InvalidImageName", "CreateContainerError", "RunContainerError", "ErrImageNeverPull"}
#: How long a pod copy or node pod may live before `cleanup` deletes it, if a session crashed.
EXPIRY = timedelta(hours=2)
#: How long a debugger started with --attach=false waits for someone to attach.
DETACHED_WAIT = 3600

# The exec debugger's own process: it waits while anything else runs in its container (the
# commands exec'd into it share its cgroup) and exits after DD_IDLE seconds with nothing. No
# command substitution and no $$ (Kubernetes rewrites $$ in commands); reads only, no forks but
# sleep, so the scan itself never looks like activity.
IDLE_SCRIPT = r"""
read -r me _ _ parent _ < /proc/self/stat
read -r mine < /proc/self/cgroup
idle=0
while [ "$idle" -lt "${DD_IDLE:-600}" ]; do
  sleep 5
  busy=
  for f in /proc/[0-9]*/cgroup; do
    p=${f#/proc/}; p=${p%/cgroup}
    case "$p" in "$me"|"$parent") continue ;; esac
    read -r line < "$f" 2>/dev/null || continue
    if [ "$line" = "$mine" ]; then busy=1; break; fi
  done
  if [ -n "$busy" ]; then idle=0; else idle=$((idle + 5)); fi
done
"""


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
        if self._stream is None:
            return 0  # started without attaching (--attach=false)
        if self.exec_mode:
            return self._exec_status(self._stream.status)
        # The kubelet reports the exit a moment after the stream closes: one watch, not polls.
        with self._kube.calls(f"reading the exit status of {self.name}", self.pod):
            for event in self._kube.watch_pod(self.pod, "", 10):
                pod = event.get("object") or {}
                state = (container_status(pod, self.name) or {}).get("state") or {}
                if state.get("terminated"):
                    code = int(state["terminated"].get("exitCode", 0))
                    if not self.created_pod:
                        self.notes.append(
                            f"debug container {self.name} exited with status {code}; ephemeral "
                            "containers stay listed in the pod but hold nothing")
                    return code
        self.notes.append(
            f"the debugger {self.name} is still running: reattach with 'kubectl attach "
            f"{self.pod} -c {self.name} -i -t -n {self._kube.namespace}'")
        return 0

    def _exec_status(self, status: Mapping[str, Any] | None) -> int:
        """The command's exit code; a status without one is the kubelet failing to run it."""
        code = exit_code_from_status(dict(status) if status else None)
        if code is not None:
            return code
        message = str((status or {}).get("message") or "").strip()
        if status is None:
            raise SidecarFailed(
                f"The stream to the debugger {self.name} in pod {self.pod} ended without an exit "
                "status: the connection broke or the debugger stopped.",
                f"See 'kubectl describe pod {self.pod} -n {self._kube.namespace}' and run the "
                "command again.")
        not_running = "not running" in message or "not found" in message
        raise SidecarFailed(
            f"The kubelet could not run the command in {self.name} of pod {self.pod}: "
            f"{message or status.get('reason') or 'no reason given'}.",
            "The idle debugger had just exited; run the command again for a fresh one."
            if not_running else
            f"See 'kubectl describe pod {self.pod} -n {self._kube.namespace}'.")

    def remove(self) -> None:
        # Ephemeral containers cannot be removed; closing the stream ends a stdinOnce debugger.
        if self._stream is not None:
            self._stream.close_write()
            self._stream.close()
        if not self.created_pod:
            return
        if self.keep:
            self.notes.append(f"kept pod {self.pod}; delete it with 'kubectl delete pod "
                              f"{self.pod} -n {self._kube.namespace}' or 'distrodebug cleanup "
                              "--kubernetes'")
            return
        try:
            self._kube.delete_pod(self.pod)
        except DistrodebugError as exc:
            # Cleanup runs while another outcome (the session's status, its error) is on its way
            # out: report, never replace it.
            self.notes.append(f"could not delete pod {self.pod} ({exc.message}); delete it with "
                              f"'kubectl delete pod {self.pod} -n {self._kube.namespace}'")


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


def _env(spec: SidecarSpec, **extra: str) -> dict[str, str]:
    """The debugger's environment: our scripts' variables, then the user's --env."""
    env = {**spec.env, **extra}
    if not spec.options.attach:
        env["DD_WAIT"] = str(DETACHED_WAIT)
    env.update(dict(spec.options.env))
    return env


def _custom(container: dict[str, Any], spec: SidecarSpec) -> dict[str, Any]:
    return merge_custom(container, spec.options.custom) if spec.options.custom else container


def _copy_manifest(spec: SidecarSpec, info: TargetInfo) -> dict[str, Any]:
    options = spec.options
    name = f"{info.name[:40]}-debug-{debugger_name(set()).rsplit('-', 1)[-1]}"
    manifest = kubepods.pod_copy(
        info.raw, info.container, name=name, debug_image=spec.image, choice=_choice(spec),
        env=_env(spec, DD_GO="1"), argv=spec.argv, labels=spec.labels, expires=_expiry(),
        set_image=dict(options.set_image) or None, tty=spec.tty, stdin=True,
        keep_labels=options.keep_labels, keep_annotations=options.keep_annotations,
        keep_probes=tuple(probe for probe, keep in (("livenessProbe", options.keep_liveness),
                                                    ("readinessProbe", options.keep_readiness),
                                                    ("startupProbe", options.keep_startup)) if keep),
        keep_init_containers=options.keep_init_containers, same_node=options.same_node,
        share_processes=options.share_processes, writable_volumes=options.writable_volumes,
        annotations=spec.annotations)
    containers = manifest["spec"]["containers"]
    containers[:] = [_custom(c, spec) if c["name"] == info.container else c for c in containers]
    return manifest


def _node_manifest(spec: SidecarSpec, info: TargetInfo) -> dict[str, Any]:
    manifest = kubepods.node_pod(
        info.name, name=kubepods.node_pod_name(info.name), debug_image=spec.image,
        profile=spec.options.profile, argv=spec.argv, env=_env(spec, DD_GO="1"), labels=spec.labels,
        tty=spec.tty, stdin=True)
    annotations = manifest["metadata"].setdefault("annotations", {})
    annotations.update({**spec.annotations, kubepods.ANNOTATION_EXPIRES: _expiry()})
    container = manifest["spec"]["containers"][0]
    ctx = container.get("securityContext") or {}
    if ctx.get("runAsNonRoot") and "runAsUser" not in ctx:
        # kubectl's restricted node pod never starts with a root image; name a non-root uid.
        ctx["runAsUser"] = kubepods.DISTROLESS_NONROOT
    manifest["spec"]["containers"][0] = _custom(container, spec)
    return manifest


def _start_pod(kube: KubeClient, spec: SidecarSpec, info: TargetInfo,
               manifest: dict[str, Any]) -> KubeSidecar:
    """Create a pod of ours (copy or node pod), wait for its debugger, attach to it."""
    pod_name = manifest["metadata"]["name"]
    container = info.container if spec.mode == "snapshot" else manifest["spec"]["containers"][0]["name"]
    created = kube.create_pod(manifest)
    attach = spec.options.attach
    sidecar = KubeSidecar(kube, pod_name, container, exec_mode=False, created_pod=True,
                          keep=spec.options.keep or not attach)
    try:
        wait_running(kube, pod_name, container, created["metadata"]["resourceVersion"],
                     spec.options.timeout)
        if spec.options.replace and spec.mode == "snapshot":
            kube.delete_pod(info.name)
            sidecar.notes.append(f"deleted the original pod {info.name} (--replace)")
        if not attach:
            sidecar.notes.append(_attach_hint(kube, pod_name, container))
            return sidecar
        query = [("container", container), ("stdin", "true"), ("stdout", "true")]
        query += [("tty", "true")] if spec.tty else [("stderr", "true")]
        with kube.calls(f"attaching to {container} in {pod_name}", pod_name):
            stream = connect(kube.configuration, f"{kube.pods_path(pod_name)}/attach", query)
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


def _attach_hint(kube: KubeClient, pod: str, container: str) -> str:
    return (f"started {container} in pod {pod} without attaching; attach with 'kubectl attach "
            f"{pod} -c {container} -i -t -n {kube.namespace}' and press Enter for the prompt "
            f"(it waits {DETACHED_WAIT // 60} minutes)")


def _ours(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [c for c in (pod.get("spec") or {}).get("ephemeralContainers") or []
            if str(c.get("name", "")).startswith("distrodebug-")]


def _reusable(pod: Mapping[str, Any], wanted: str) -> str | None:
    """A running idle debugger of ours made for exactly this request (see request_hash)."""
    for item in _ours(pod):
        if item.get("tty") or item.get("stdin") or env_value(item, "DD_REQUEST") != wanted:
            continue
        state = (container_status(pod, item["name"]) or {}).get("state") or {}
        if state.get("running"):
            return str(item["name"])
    return None


def _exec_body(spec: SidecarSpec, name: str, target: str) -> dict[str, Any]:
    """The idle exec debugger: our entry scripts in its env, the idle loop as its process."""
    reaper = (spec.argv[0],) if spec.argv[0].endswith("reaper") else ()
    idle = dataclasses.replace(spec, argv=(*reaper, "/bin/sh", "-c", IDLE_SCRIPT), stdin=False,
                               env=_env(spec, DD_IDLE=str(spec.options.debugger_idle)))
    body = _custom(ephemeral_container(idle, name, target, spec.security_context), spec)
    body["env"].append({"name": "DD_REQUEST", "value": request_hash(body)})
    return body


def _compliant_retry(body: dict[str, Any], spec: SidecarSpec, level: str) -> dict[str, Any]:
    """The same debugger as the profile the refusing level admits.

    baseline: no securityContext at all (root with the runtime's default capabilities still
    reads a root target); restricted: every capability dropped, as the uid asked for, else
    distroless's 65532, which reads a target of the same uid (outside a chroot).
    """
    retry = {k: v for k, v in body.items() if k != "securityContext"}
    view = "chroot"
    if level == "restricted":
        ctx = dict(PROFILE_CONTEXT["restricted"] or {})
        uid = (spec.security_context or {}).get("runAsUser")
        ctx["runAsUser"] = uid if isinstance(uid, int) and uid != 0 else kubepods.DISTROLESS_NONROOT
        retry["securityContext"] = ctx
        view = "proc"
    retry["env"] = [e for e in body.get("env") or [] if e["name"] not in ("DD_VIEW", "DD_REQUEST")]
    retry["env"].append({"name": "DD_VIEW", "value": view})
    if "DD_REQUEST" in {e["name"] for e in body.get("env") or []}:
        retry["env"].append({"name": "DD_REQUEST", "value": request_hash(retry)})
    return retry


def _add(kube: KubeClient, spec: SidecarSpec, info: TargetInfo, body: dict[str, Any]) -> dict[str, Any]:
    """PATCH the debugger in; under `auto`, one retry as restricted when Pod Security refuses."""
    try:
        return kube.add_ephemeral(info.name, body)
    except kubeerrors.PodSecurityRefused as exc:
        others = [c for c in exc.containers if c != body["name"]]
        if others:
            # Pod Security judges the whole pod: containers already in it fail the level, so
            # no debugger can ever be added. Only a copy (a new pod) gets around that.
            raise kubeerrors.PodSecurityRefused(
                exc.message, f"The pod's own containers ({', '.join(others)}) break the "
                f"'{exc.level}' level, so no debugger can be added to it: debug a copy with "
                f"'distrodebug shell pod/{info.name} --copy --profile restricted'.",
                exc.level, exc.containers) from None
        if spec.options.profile != "auto" or (body.get("securityContext") or {}).get("runAsNonRoot"):
            raise
        level = exc.level
    retry = _compliant_retry(body, spec, level)
    try:
        patched = kube.add_ephemeral(info.name, retry)
    except kubeerrors.PodSecurityRefused as exc:
        raise kubeerrors.PodSecurityRefused(
            exc.message, f"The '{exc.level}' level refuses even the debugger made for it here; "
            f"debug a copy with 'distrodebug shell pod/{info.name} --copy'.",
            exc.level, exc.containers) from None
    body.clear()
    body.update(retry)
    return patched


def _start_ephemeral(kube: KubeClient, spec: SidecarSpec, info: TargetInfo) -> KubeSidecar:
    exec_mode = not spec.tty
    reuse = spec.options.reuse
    pod = info.raw
    name: str | None = None
    if exec_mode:
        wanted = request_hash(_exec_body(spec, "distrodebug-x", info.container))
        name = _reusable(pod, wanted)
    elif reuse:
        name = next((str(c["name"]) for c in _ours(pod) if not c.get("tty")
                     and ((container_status(pod, c["name"]) or {}).get("state") or {}).get("running")
                     and c.get("targetContainerName") == info.container), None)
        if name is None:
            raise TargetNotDebuggable(f"Pod '{info.name}' has no running debugger of ours for "
                                      f"container '{info.container}' to reuse.",
                                      "Run 'distrodebug exec' once to start one, or drop --reuse.")
    if name is None:
        if len(_ours(pod)) >= spec.options.max_debuggers:
            raise TargetNotDebuggable(
                f"Pod '{info.name}' already holds {len(_ours(pod))} ephemeral debuggers of ours, "
                "which Kubernetes never removes; each one stays in the pod object.",
                f"Recreate the pod to clear them (e.g. 'kubectl rollout restart'), or debug a copy "
                f"('distrodebug shell pod/{info.name} --copy').")
        name = debugger_name(all_names(pod))
        if exec_mode:
            body = _exec_body(spec, name, info.container)
        else:
            body = _custom(ephemeral_container(dataclasses.replace(spec, env=_env(spec)), name,
                                               info.container, spec.security_context), spec)
        patched = _add(kube, spec, info, body)
        wait_running(kube, info.name, name, patched["metadata"]["resourceVersion"],
                     spec.options.timeout)
    sidecar = KubeSidecar(kube, info.name, name, exec_mode or reuse)
    if not spec.options.attach:
        sidecar.notes.append(_attach_hint(kube, info.name, name))
        return sidecar
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
    if exec_mode and spec.stdin and stream.protocol != V5:
        stream.close()
        raise UsageError(
            f"The API server at {kube.endpoint} speaks only the v4 streaming protocol (before "
            "Kubernetes 1.30, or a proxy that keeps v4), which cannot tell a command that its "
            "input ended: a command reading stdin would never finish.",
            "Run it without piped input (--no-stdin), or copy the input in first with "
            "'distrodebug cp' and read it from a file.")
    sidecar.attach(stream)
    if preamble:
        stream.send(preamble)
    return sidecar


class _ExitedAtOnce(Exception):
    def __init__(self, name: str, code: int, reason: str, message: str) -> None:
        super().__init__(name)
        self.name, self.code, self.reason, self.message = name, code, reason, message


def wait_running(kube: KubeClient, pod: str, name: str, resource_version: str,
                 timeout: float) -> None:
    """Until container ``name`` of ``pod`` runs (or ran), bounded by ``timeout`` seconds."""
    try:
        _wait_running(kube, pod, name, resource_version, timeout)
    except _ExitedAtOnce as gone:
        # The runtime's own words ("exec format error") are in the container's log, if anywhere.
        said = gone.message
        try:
            log = kube.raw(kube.pods_path(pod, "log"), {"container": name, "tailLines": "5"})
            said = "; ".join(filter(None, [said, log.decode("utf-8", "replace").strip()]))
        except Exception:  # noqa: BLE001 - the log is a courtesy; the exit is the news
            pass
        raise SidecarFailed(
            f"The debug container {name} exited at once with status {gone.code} "
            f"({gone.reason}: {said or 'no message'}).",
            "Check that the debug image has /bin/sh and suits the node's architecture "
            f"('kubectl logs {pod} -c {name} -n {kube.namespace}').") from None


def _wait_running(kube: KubeClient, pod: str, name: str, resource_version: str,
                  timeout: float) -> None:
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
    """True once ``name`` runs; raises on states the kubelet or scheduler will not leave."""
    pod_name = pod["metadata"]["name"]
    state = (container_status(pod, name) or {}).get("state") or {}
    if state.get("running"):
        return True
    terminated = state.get("terminated") or {}
    if terminated:
        code = terminated.get("exitCode", 0)
        if code not in (0, None) and terminated.get("reason") in ("Error", "StartError",
                                                                   "ContainerCannotRun"):
            # Exited before anyone attached: a wrong architecture ("exec format error"), a
            # missing shell in the debug image, a crash. Attaching to it would only hang.
            raise _ExitedAtOnce(name, int(code), str(terminated.get("reason")),
                                str(terminated.get("message", "")).strip())
        return True
    status = pod.get("status") or {}
    for condition in status.get("conditions") or []:
        if (condition.get("type") == "PodScheduled" and condition.get("status") == "False"
                and condition.get("reason") == "Unschedulable"):
            raise SidecarFailed(
                f"Pod {pod_name} cannot be scheduled: {condition.get('message', 'no node fits')}.",
                "A copy must fit a node: free the resources, or pass --same-node, and delete "
                f"it with 'kubectl delete pod {pod_name} -n {namespace}' if it was kept.")
    if status.get("phase") == "Failed":
        raise SidecarFailed(
            f"Pod {pod_name} failed: {status.get('reason', 'Failed')}: "
            f"{status.get('message', 'no message')}.",
            f"See 'kubectl describe pod {pod_name} -n {namespace}'.")
    for key in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
        for item in status.get(key) or []:
            waiting = (item.get("state") or {}).get("waiting") or {}
            if (item.get("name") == name or key == "initContainerStatuses") and waiting.get(
                    "reason") in FATAL_WAITING:
                raise kubeerrors.waiting_failed(item["name"], waiting, pod_name, namespace)
            done = (item.get("state") or {}).get("terminated") or {}
            if key == "initContainerStatuses" and done.get("exitCode", 0) != 0:
                raise SidecarFailed(
                    f"The init container {item['name']} of {pod_name} failed "
                    f"({done.get('reason', 'Error')}: {done.get('message', '')}).",
                    f"See 'kubectl logs {pod_name} -c {item['name']} -n {namespace}'.")
    return False


__all__ = ["KubeSidecar", "start", "wait_running"]
