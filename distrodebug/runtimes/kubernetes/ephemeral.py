"""Ephemeral debuggers: added to the target's pod, shared by requests made alike, ended when idle.

Ephemeral containers can never be removed, so the exec debugger is shared: later `exec`, `cp`
and `dump` calls made for the same request (same image, privileges, target container and
scripts: a hash of them travels in its environment) reuse it, it exits by itself after a spell
without any exec in it (``debugger_idle``), and a pod never gets more than ``max_debuggers`` of
ours. Under `auto`, a Pod Security refusal is retried once with the refusing level's profile.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from distrodebug.errors import TargetNotDebuggable, UsageError
from distrodebug.model import SidecarSpec, TargetInfo
from distrodebug.runtimes.kubernetes import errors as kubeerrors
from distrodebug.runtimes.kubernetes import pods as kubepods
from distrodebug.runtimes.kubernetes.client import KubeClient
from distrodebug.runtimes.kubernetes.debugger import (
    KubeSidecar,
    attach_hint,
    customised,
    debugger_env,
    wait_running,
)
from distrodebug.runtimes.kubernetes.profiles import PROFILE_CONTEXT
from distrodebug.runtimes.kubernetes.spec import (
    all_names,
    container_status,
    debugger_name,
    env_value,
    ephemeral_container,
    long_script_on_stdin,
    request_hash,
)
from distrodebug.runtimes.kubernetes.stream import V5, connect
from distrodebug.sidecar import IDLE_SCRIPT


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
                               env=debugger_env(spec, DD_IDLE=str(spec.options.debugger_idle)))
    body = customised(ephemeral_container(idle, name, target, spec.security_context), spec)
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


def start_ephemeral(kube: KubeClient, spec: SidecarSpec, info: TargetInfo) -> KubeSidecar:
    exec_mode = not spec.tty
    reuse = spec.options.reuse
    pod = info.raw
    name: str | None = None
    detached_command = exec_mode and not spec.options.attach
    if detached_command:
        pass  # kubectl's --attach=false: a debugger of its own runs the command, no idle one
    elif exec_mode:
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
        if detached_command:
            # The entry script runs the command as the container's own process, as kubectl
            # debug runs its command; its output is the container's log.
            body = customised(ephemeral_container(
                dataclasses.replace(spec, env=debugger_env(spec), stdin=False), name,
                info.container, spec.security_context), spec)
        elif exec_mode:
            body = _exec_body(spec, name, info.container)
        else:
            # DD_MARK: the entry script ends with its status in the output (sidecar.EXIT_MARK).
            mark = {"DD_MARK": "1"} if spec.options.attach else {}
            env = debugger_env(spec, **mark)
            body = customised(ephemeral_container(dataclasses.replace(spec, env=env), name,
                                                  info.container, spec.security_context), spec)
        patched = _add(kube, spec, info, body)
        wait_running(kube, info.name, name, patched["metadata"]["resourceVersion"],
                     spec.options.timeout)
    sidecar = KubeSidecar(kube, info.name, name, exec_mode or reuse)
    if not spec.options.attach:
        sidecar.notes.append(attach_hint(kube, info.name, name, command=exec_mode))
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
    if not sidecar.exec_mode:
        stream.watch_exit_marks()
    sidecar.attach(stream)
    if preamble:
        stream.send(preamble)
    return sidecar
