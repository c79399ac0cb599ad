"""The pods distrodebug creates: a copy of the target's pod, or a node debugging pod.

Created, waited for, attached to, and deleted when the session ends (unless --keep or
--attach=false); an expiry annotation lets `cleanup` find the ones a crashed session left.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from distrodebug.model import SidecarSpec, TargetInfo
from distrodebug.runtimes.kubernetes import pods as kubepods
from distrodebug.runtimes.kubernetes.client import KubeClient
from distrodebug.runtimes.kubernetes.debugger import (
    KubeSidecar,
    attach_hint,
    customised,
    debugger_env,
    wait_running,
)
from distrodebug.runtimes.kubernetes.profiles import KubeChoice
from distrodebug.runtimes.kubernetes.spec import debugger_name
from distrodebug.runtimes.kubernetes.stream import connect

#: How long a pod copy or node pod may live before `cleanup` deletes it, if a session crashed.
EXPIRY = timedelta(hours=2)


def _expiry() -> str:
    return (datetime.now(UTC) + EXPIRY).strftime("%Y-%m-%dT%H:%M:%SZ")


def _choice(spec: SidecarSpec) -> KubeChoice:
    ctx = dict(spec.security_context or {})
    return KubeChoice(spec.profile or "auto", ctx or None, "chroot", "")


def _copy_manifest(spec: SidecarSpec, info: TargetInfo) -> dict[str, Any]:
    options = spec.options
    # A pod name is a DNS subdomain: cut, it may end in '.' or '-', which may not precede '-'.
    name = f"{info.name[:40].rstrip('-.')}-debug-{debugger_name(set()).rsplit('-', 1)[-1]}"
    manifest = kubepods.pod_copy(
        info.raw, info.container, name=name, debug_image=spec.image, choice=_choice(spec),
        env=debugger_env(spec, DD_GO="1"), argv=spec.argv, labels=spec.labels, expires=_expiry(),
        set_image=dict(options.set_image) or None, tty=spec.tty, stdin=True,
        keep_labels=options.keep_labels, keep_annotations=options.keep_annotations,
        keep_probes=tuple(probe for probe, keep in (("livenessProbe", options.keep_liveness),
                                                    ("readinessProbe", options.keep_readiness),
                                                    ("startupProbe", options.keep_startup)) if keep),
        keep_init_containers=options.keep_init_containers, same_node=options.same_node,
        share_processes=options.share_processes, writable_volumes=options.writable_volumes,
        annotations=spec.annotations)
    containers = manifest["spec"]["containers"]
    containers[:] = [customised(c, spec) if c["name"] == info.container else c for c in containers]
    return manifest


def _node_manifest(spec: SidecarSpec, info: TargetInfo) -> dict[str, Any]:
    manifest = kubepods.node_pod(
        info.name, name=kubepods.node_pod_name(info.name), debug_image=spec.image,
        profile=spec.options.profile, argv=spec.argv, env=debugger_env(spec, DD_GO="1"), labels=spec.labels,
        tty=spec.tty, stdin=True)
    annotations = manifest["metadata"].setdefault("annotations", {})
    annotations.update({**spec.annotations, kubepods.ANNOTATION_EXPIRES: _expiry()})
    container = manifest["spec"]["containers"][0]
    ctx = container.get("securityContext") or {}
    if ctx.get("runAsNonRoot") and "runAsUser" not in ctx:
        # kubectl's restricted node pod never starts with a root image; name a non-root uid.
        ctx["runAsUser"] = kubepods.DISTROLESS_NONROOT
    manifest["spec"]["containers"][0] = customised(container, spec)
    return manifest


def start_pod(kube: KubeClient, spec: SidecarSpec, info: TargetInfo,
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
            sidecar.detached = True
            sidecar.notes.append(attach_hint(kube, pod_name, container, command=not spec.tty,
                                              created_pod=True))
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




def start_copy(kube: KubeClient, spec: SidecarSpec, info: TargetInfo) -> KubeSidecar:
    return start_pod(kube, spec, info, _copy_manifest(spec, info))


def start_node_pod(kube: KubeClient, spec: SidecarSpec, info: TargetInfo) -> KubeSidecar:
    return start_pod(kube, spec, info, _node_manifest(spec, info))
