"""What every Kubernetes debugger shares: the Sidecar the session drives, its environment, and
the bounded wait for it to run.

The wait is a watch bounded by --timeout; states the kubelet or the scheduler will not leave by
themselves (image pulls, config errors, an immediate exit, Unschedulable, Failed) end it at once
with their reason. The two kinds of debugger are in ephemeral.py (added to the target's pod) and
ourpods.py (a copy of the pod, or a node pod).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from distrodebug import tracking
from distrodebug.errors import DistrodebugError, SidecarFailed, TargetNotDebuggable
from distrodebug.model import Answer, SidecarSpec
from distrodebug.runtimes.kubernetes import errors as kubeerrors
from distrodebug.runtimes.kubernetes.client import KubeClient
from distrodebug.runtimes.kubernetes.spec import container_status, merge_custom
from distrodebug.runtimes.kubernetes.stream import WebSocketStream, exit_code_from_status

#: Waiting reasons the kubelet will not get out of by itself in the time we wait.
FATAL_WAITING = {"ErrImagePull", "ImagePullBackOff", "CreateContainerConfigError",
                 "InvalidImageName", "CreateContainerError", "RunContainerError", "ErrImageNeverPull"}
#: How long a debugger started with --attach=false waits for someone to attach.
DETACHED_WAIT = 3600


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
        #: Started with --attach=false and left running on purpose.
        self.detached = False
        tracking.track(self)

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
        marks = self._stream.exit_marks
        if marks is not None and marks.code is not None:
            # The entry script's last output said it (sidecar.EXIT_MARK): no request needed.
            return self._exited(marks.code)
        # No mark (the stream broke, an older debugger, a pod whose script execs the shell): the
        # kubelet reports the exit a moment after the stream closes: one watch, not polls.
        with self._kube.calls(f"reading the exit status of {self.name}", self.pod):
            for event in self._kube.watch_pod(self.pod, "", 10):
                pod = event.get("object") or {}
                state = (container_status(pod, self.name) or {}).get("state") or {}
                if state.get("terminated"):
                    return self._exited(int(state["terminated"].get("exitCode", 0)))
        self.notes.append(
            f"the debugger {self.name} is still running: reattach with 'kubectl attach "
            f"{self.pod} -c {self.name} -i -t -n {self._kube.namespace}'")
        return 0

    def _exited(self, code: int) -> int:
        if not self.created_pod:
            self.notes.append(f"debug container {self.name} exited with status {code}; ephemeral "
                              "containers stay listed in the pod but hold nothing")
        return code

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
        if self.detached:
            return  # started with --attach=false: its Answer says how to reach and delete it
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


def debugger_env(spec: SidecarSpec, **extra: str) -> dict[str, str]:
    """The debugger's environment: our scripts' variables, then the user's --env.

    Started with --attach=false, a shell waits longer for its client (DD_WAIT), and a command
    does not wait for one at all (no DD_GO): it runs at once, as kubectl debug's does.
    """
    env = {**spec.env, **extra}
    if not spec.options.attach:
        env["DD_WAIT"] = str(DETACHED_WAIT)
        if not spec.tty:
            env.pop("DD_GO", None)
    env.update(dict(spec.options.env))
    return env


def customised(container: dict[str, Any], spec: SidecarSpec) -> dict[str, Any]:
    return merge_custom(container, spec.options.custom) if spec.options.custom else container


def attach_hint(kube: KubeClient, pod: str, container: str, command: bool = False,
                created_pod: bool = False) -> Answer:
    """How to reach a debugger started with --attach=false: a command's output is its log, a
    shell waits for a client; a pod we created stays until deleted."""
    return Answer(_reach(kube, pod, container, command) + (
        f"; delete the pod afterwards with 'kubectl delete pod {pod} -n {kube.namespace}'"
        if created_pod else ""))


def _reach(kube: KubeClient, pod: str, container: str, command: bool) -> str:
    if command:
        return (f"started {container} in pod {pod} running the command without attaching; read "
                f"its output with 'kubectl logs {pod} -c {container} -n {kube.namespace}'")
    return (f"started {container} in pod {pod} without attaching; attach with 'kubectl attach "
            f"{pod} -c {container} -i -t -n {kube.namespace}' and press Enter for the prompt "
            f"(it waits {DETACHED_WAIT // 60} minutes)")


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
                f"Pod {pod_name} cannot be scheduled: "
                f"{str(condition.get('message') or 'no node fits').rstrip('.')}.",
                "A copy must fit a node: free the resources, or pass --same-node, and delete "
                f"it with 'kubectl delete pod {pod_name} -n {namespace}' if it was kept.")
    if status.get("phase") == "Failed":
        raise SidecarFailed(
            f"Pod {pod_name} failed: {status.get('reason', 'Failed')}: "
            f"{str(status.get('message') or 'no message').rstrip('.')}.",
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


__all__ = ["KubeSidecar", "attach_hint", "customised", "debugger_env", "wait_running"]
