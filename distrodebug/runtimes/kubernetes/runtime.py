"""The Kubernetes runtime: ephemeral debug containers, pod copies and node pods.

Talks to the cluster through :class:`KubeClient` (client.py); what is sent is built by pure
functions (spec.py, pods.py, profiles.py); the debugger's life is in debugger.py. Waits are
bounded and end early on states the kubelet will not leave by itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO
from urllib.parse import quote

from kubernetes.client.exceptions import ApiException

from distrodebug import labels as ours
from distrodebug.clock import now_iso
from distrodebug.errors import NoSuchTarget, PermissionDenied, TargetNotDebuggable
from distrodebug.model import (
    DebugOptions,
    DumpMeta,
    ImageInfo,
    Mode,
    OwnedObject,
    Privileges,
    RelaySpec,
    RuntimeState,
    SidecarSpec,
    TargetInfo,
    is_root_user,
)
from distrodebug.runtimes.kubernetes import ephemeral, ourpods
from distrodebug.runtimes.kubernetes import events as kubeevents
from distrodebug.runtimes.kubernetes import profiles as kubeprofiles
from distrodebug.runtimes.kubernetes import state as kubestate
from distrodebug.runtimes.kubernetes.client import KubeClient
from distrodebug.runtimes.kubernetes.debugger import KubeSidecar
from distrodebug.runtimes.kubernetes.pods import ANNOTATION_EXPIRES
from distrodebug.runtimes.kubernetes.spec import (
    container_state,
    container_status,
    custody_identity,
    label_selector,
    pick_container,
)
from distrodebug.runtimes.kubernetes.stream import V4, PortStream, connect, refuse_socks
from distrodebug.runtimes.volatile import (
    LOG_MAX_BYTES,
    LOG_TAIL_LINES,
    MAX_EVENTS,
    NewestBytes,
    newest_events,
)
from distrodebug.settings import DEFAULT_IMAGE
from distrodebug.target import Target

DEFAULT_REAPER = "/usr/local/bin/distrodebug-reaper"
#: Workload kind -> its API path below /apis.
_WORKLOADS = {"deployment": "apps/v1/{ns}/deployments", "statefulset": "apps/v1/{ns}/statefulsets",
              "daemonset": "apps/v1/{ns}/daemonsets", "replicaset": "apps/v1/{ns}/replicasets",
              "job": "batch/v1/{ns}/jobs"}


class KubernetesRuntime:
    """One cluster and namespace; implements the Runtime and Inventory protocols."""

    kind = "kubernetes"

    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube
        self.endpoint = kube.endpoint

    @property
    def namespace(self) -> str:
        return self.kube.namespace

    # -- our objects ---------------------------------------------------------------------------
    def list_ours(self) -> list[OwnedObject]:
        """Pod copies and node pods of ours in the namespace."""
        found = []
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        for pod in self.kube.list_pods(label_selector=ours.selector()):
            meta = pod["metadata"]
            labels = dict(meta.get("labels") or {})
            annotations = meta.get("annotations") or {}
            labels.update({k: v for k, v in annotations.items() if k.startswith("io.distrodebug")})
            expires = annotations.get(ANNOTATION_EXPIRES, "")
            if expires and expires < now:
                labels[ours.OWNER_PID] = "expired"  # past its expiry: a leftover whoever made it
                labels[ours.OWNER_HOST] = ours.this_host()
            found.append(OwnedObject("pod", meta["name"], meta["name"],
                                     (pod.get("status") or {}).get("phase", ""), labels))
        return found

    def remove_objects(self, objects: list[tuple[str, str]]) -> None:
        for kind, name in objects:
            if kind == "pod":
                self.kube.delete_pod(name)

    # -- targets -------------------------------------------------------------------------------
    def inspect(self, target: Target) -> TargetInfo:
        if target.namespace:
            self.kube.namespace = target.namespace
        if target.kind == "node":
            node = self.kube.read(f"/api/v1/nodes/{target.name}", f"reading node '{target.name}'",
                                  target.name)
            return TargetInfo(id=target.name, name=target.name, image="", image_id="", status="node",
                              raw=node, container="debugger", namespace=self.namespace)
        pod = self._resolve_pod(target)
        container, note = pick_container(pod, target.container)
        spec = next(c for c in pod["spec"]["containers"] if c["name"] == container)
        found = container_status(pod, container) or {}
        status = container_state(found, time.time())
        sec = kubeprofiles.pod_security(pod, container, None)
        return TargetInfo(
            id=pod["metadata"]["name"], name=pod["metadata"]["name"], image=spec.get("image", ""),
            image_id=(container_status(pod, container) or {}).get("imageID", ""), status=status,
            user="" if sec.run_as_user is None else str(sec.run_as_user),
            read_only=sec.read_only_root, workdir=spec.get("workingDir") or "/",
            entrypoint=tuple(spec.get("command") or ()), cmd=tuple(spec.get("args") or ()),
            labels=(pod["metadata"].get("labels") or {}), raw=pod, container=container,
            namespace=self.namespace, note=note,
            container_id=str(found.get("containerID") or "").partition("://")[2],
        )

    def _resolve_pod(self, target: Target) -> dict[str, Any]:
        if target.kind == "pod":
            return self.kube.read_pod(target.name)
        if target.kind != "workload":
            raise TargetNotDebuggable(f"'{target}' cannot be debugged with an ephemeral container.",
                                      "Name a pod (pod/NAME) or a workload (deploy/NAME).")
        route = _WORKLOADS.get(target.resource or "", "")
        if not route:
            raise TargetNotDebuggable(f"'{target}' is not a workload distrodebug knows.",
                                      "Use deploy/, sts/, ds/, rs/ or job/.")
        group, version, _, plural = route.split("/")
        workload = self.kube.read(
            f"/apis/{group}/{version}/namespaces/{self.namespace}/{plural}/{target.name}",
            f"reading {target.resource} '{target.name}'", target.name)
        text = label_selector((workload.get("spec") or {}).get("selector") or {})
        if not text:
            raise TargetNotDebuggable(
                f"{target.resource} '{target.name}' has an empty pod selector, which would match "
                "every pod in the namespace.", "Name the pod to debug with pod/NAME.")
        pods = {"items": self.kube.list_pods(label_selector=text)}
        running = [p for p in pods.get("items") or [] if (p.get("status") or {}).get("phase") == "Running"]
        if not running:
            raise NoSuchTarget(f"{target.resource} '{target.name}' has no running pod.",
                               f"Check it with 'kubectl get pods -l {text} -n {self.namespace}'.")
        return sorted(running, key=lambda p: p["metadata"]["name"])[0]

    def target_state(self, info: TargetInfo) -> str:
        try:
            pod = self.kube.read_pod(info.name)
        except NoSuchTarget:
            return "removed"
        except Exception:
            return "unknown"
        state = (container_status(pod, info.container) or {}).get("state") or {}
        return "running" if state.get("running") else "exited"

    def ensure_image(self, ref: str, notice: Callable[[str], None]) -> ImageInfo:
        # The kubelet pulls; all we can know in advance is whether it is our own toolbox.
        labels = {ours.REAPER: DEFAULT_REAPER} if ref == DEFAULT_IMAGE else {}
        return ImageInfo(ref=ref, id="", labels=labels)

    def privileges(self, info: TargetInfo, options: DebugOptions) -> tuple[Mode, Privileges]:
        user, cap_add, privileged = options.user, options.cap_add, options.privileged
        if info.status == "node":
            profile = "general" if options.profile == "auto" else options.profile
            return "node", Privileges(user="", cap_add=(), privileged=profile == "sysadmin",
                                      view="proc", reason="kubectl's node debugging pod: the host's root "
                                      "is at /host" if profile in ("general", "sysadmin", "legacy") else
                                      f"profile {profile}: no host root", profile=profile)
        if options.wants_copy:
            mode: Mode = "snapshot"
        elif info.status != "running":
            raise TargetNotDebuggable(
                f"Container '{info.container}' of pod '{info.name}' is not running ({info.status}), "
                "so an ephemeral container cannot join it.",
                f"Debug a copy instead: 'distrodebug shell pod/{info.name} --copy'.",
            )
        sec = kubeprofiles.pod_security(info.raw, info.container, None)
        # The namespace's Pod Security label matters only when a choice could break it; reading
        # it costs a request (and a permission), so ask only then.
        # A named profile the namespace is certain to refuse is refused before anything is sent.
        # `auto` does not read the label (a request, and a permission many users lack): a Pod
        # Security refusal of its first choice makes it retry with the level's own profile.
        needs_level = (options.profile in ("general", "netadmin", "sysadmin") or cap_add
                       or privileged)
        if needs_level:
            sec = kubeprofiles.pod_security(info.raw, info.container, self.namespace_labels())
        choice = kubeprofiles.choose(options.profile, sec)
        ctx = kubeprofiles.request_context(choice.security_context, user=user, cap_add=cap_add,
                                           privileged=privileged) or {}
        view = choice.view if user is None else ("chroot" if is_root_user(user) else "proc")
        if not options.wants_copy:
            mode = "join"
        return mode, Privileges(
            user=str(ctx.get("runAsUser", "")), cap_add=tuple((ctx.get("capabilities") or {}).get("add", [])),
            privileged=bool(ctx.get("privileged")), view=view, reason=choice.reason,  # type: ignore[arg-type]
            security_context=ctx or None, profile=choice.profile,
        )

    def dump_meta(self, info: TargetInfo) -> DumpMeta:
        """The pod object and the container's declared env (events and logs: volatile_state)."""
        members: dict[str, Any] = {"pod.json": dict(info.raw)}
        ns = self.namespace
        spec = next(c for c in info.raw["spec"]["containers"] if c["name"] == info.container)
        members["environment.json"] = [
            f"{e['name']}={e['value']}" if "value" in e
            else f"{e['name']}=<from {sorted(e.get('valueFrom', {}))}>"
            for e in spec.get("env") or []
        ]
        identity = {
            "runtime": "kubernetes", "namespace": ns, "pod": info.name, "container": info.container,
            "container_id": None, "container_name": info.container, "status": info.status,
            "image": info.image, "image_id": info.image_id, "repo_digests": [],
            "entrypoint": list(info.entrypoint), "cmd": list(info.cmd), "user": info.user,
            "labels": dict(info.labels), "created": info.raw.get("metadata", {}).get("creationTimestamp"),
        }
        identity.update(custody_identity(info.raw, info.container))
        return DumpMeta(identity=identity, members=members, changes=None)

    def volatile_state(self, info: TargetInfo) -> RuntimeState:
        """The pod's status, its Events (matched by UID: a pod re-created under the same name has
        other ones) and the target container's logs with timestamps, the previous run's too."""
        captured = now_iso()
        state = kubestate.pod_state(info.raw, info.container)
        notes: list[str] = []
        events = kubestate.state_events(state)
        raw_events: list[Any] = []
        uid = str((info.raw.get("metadata") or {}).get("uid") or "")
        try:
            with self.kube.calls(f"reading the events of pod '{info.name}'", info.name):
                listed = self.kube.request(
                    "GET", f"/api/v1/namespaces/{quote(self.namespace, safe='')}/events",
                    query={"fieldSelector": f"involvedObject.uid={uid}" if uid
                           else f"involvedObject.name={info.name}", "limit": str(MAX_EVENTS)})
            raw_events = list(listed.get("items") or [])
            if (listed.get("metadata") or {}).get("continue"):
                notes.append(f"events: only the first {MAX_EVENTS} were read")
        except PermissionDenied:
            notes.append("events: not readable with these credentials (RBAC: list events)")
        events += [e for e in map(kubestate.pod_event, raw_events) if e is not None]
        notes.append("events: the API server keeps them for an hour by default (--event-ttl)")
        logs = self._logs(info, False, notes)
        previous = self._logs(info, True, notes) if kubestate.restarted(state) else None
        return RuntimeState(captured, state, newest_events(events, notes), logs or "",
                            previous, tuple(notes), raw={"events.json": raw_events})

    def _logs(self, info: TargetInfo, previous: bool, notes: list[str]) -> str | None:
        """The container's log with timestamps, the newest part; None with a note when there
        is none to read (not started yet, no permission, the previous run's already gone)."""
        what = "previous logs" if previous else "logs"
        query = {"container": info.container, "timestamps": "true",
                 "tailLines": str(LOG_TAIL_LINES), "limitBytes": str(2 * LOG_MAX_BYTES)}
        if previous:
            query["previous"] = "true"
        kept = NewestBytes()
        with self.kube.calls(f"reading the {what} of pod '{info.name}'", info.name):
            try:
                kept.feed(self.kube.raw(self.kube.pods_path(info.name, "log"), query))
            except ApiException as exc:  # not started yet, no previous run kept, no permission
                notes.append(f"{what}: the API server answered {exc.status} {exc.reason}")
                return None
        if kept.total >= 2 * LOG_MAX_BYTES:
            notes.append(f"{what}: the API server sent its limit of {2 * LOG_MAX_BYTES} bytes, "
                         "the oldest of the newest lines asked for")
        if (note := kept.note(what)) is not None:
            notes.append(note)
        return kept.text()

    def where(self, mode: Mode, info: TargetInfo, privileges: Privileges) -> str:
        if mode == "node":
            return "a debugging pod on the node; the host's root, where mounted, is at /host"
        if mode == "snapshot":
            return ("a copy of the pod with the app's command replaced so it stays up (its volumes, "
                    "no probes, no labels: no Service routes to it); deleted on exit unless --keep")
        if privileges.view == "chroot":
            return "you are in the target's root; sidecar tools on PATH, their files at $DISTRODEBUG_TOOLS"
        return f"the target's root is at /proc/{info.pid}/root ($DISTRODEBUG_ROOT)"

    def announce(self, info: TargetInfo, message: str) -> str:
        """Leave a 'Debugged' Event on the target pod; "" when done, else a notice."""
        if info.status == "node" or not (info.raw.get("metadata") or {}).get("uid"):
            return ""
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return self.kube.create_event(
            kubeevents.debugged(info.raw, info.container, message, socket.gethostname(), stamp))

    def audit_identity(self, info: TargetInfo) -> dict[str, str]:
        meta = info.raw.get("metadata") or {}
        return {"pod": info.name, "pod_uid": str(meta.get("uid", "")), "namespace": info.namespace,
                "container": info.container, "container_id": info.container_id}

    def memory_attempts(self, options: DebugOptions, owner: tuple[int, int] | None) -> list[DebugOptions]:
        """The dump's own debugger first (`auto` picks the target's uid, or root with the
        default capabilities); then kubectl's `general` profile (SYS_PTRACE) as root. Pod
        Security is checked before that debugger is sent, and a refusal is an error, not auto's
        quiet step down."""
        return [options, dataclasses.replace(options, user="0", profile="general")]

    def gone_hint(self, info: TargetInfo) -> str:
        return (f"Run 'kubectl get pod {info.name} -n {self.namespace}' and 'kubectl get events -n "
                f"{self.namespace} --field-selector involvedObject.name={info.name}' to see what "
                f"happened; 'distrodebug shell pod/{info.name} --copy' debugs a copy of it.")

    @contextlib.contextmanager
    def read_archive(self, info: TargetInfo, path: str) -> Iterator[BinaryIO]:
        raise TargetNotDebuggable(
            f"Container '{info.container}' of pod '{info.name}' is not running ({info.status}); "
            "Kubernetes has no way to read a stopped container's files.",
            f"Debug a copy of the pod instead: 'distrodebug shell pod/{info.name} --copy'.")
        yield  # pragma: no cover

    def write_archive(self, info: TargetInfo, into: str, source: BinaryIO) -> None:
        with self.read_archive(info, into):
            pass

    def is_dir(self, info: TargetInfo, path: str) -> bool:
        with self.read_archive(info, path):
            return False

    def server_version(self) -> str:
        return str(self.kube.read("/version", "reading the server version").get("gitVersion", "?"))

    def can_i(self, verb: str, resource: str, subresource: str, name: str) -> tuple[bool, str]:
        """A SelfSubjectAccessReview, with the subresource where kubectl's can-i gets it wrong."""
        attrs = {"verb": verb, "resource": resource}
        if resource != "nodes":  # cluster-scoped: no namespace
            attrs["namespace"] = self.namespace
        if subresource:
            attrs["subresource"] = subresource
        if name:
            attrs["name"] = name
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": attrs}}
        with self.kube.calls(f"checking '{verb} {resource}'"):
            review = self.kube.request(
                "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", body=body)
        status = review.get("status") or {}
        return bool(status.get("allowed")), str(status.get("reason") or "")

    def namespace_labels(self) -> dict[str, str] | None:
        try:
            ns = self.kube.read(f"/api/v1/namespaces/{self.namespace}", "reading the namespace")
        except Exception:  # no permission to read namespaces: decide without the label
            return None
        return dict((ns.get("metadata") or {}).get("labels") or {})

    # -- the debugger ---------------------------------------------------------------------------
    def start_relay(self, spec: RelaySpec, info: TargetInfo) -> KubeRelay:
        """Pods need no relay container: the kubelet's port forwarding reaches the pod's
        loopback (the pod's network namespace is shared by its containers)."""
        return KubeRelay(self.kube, info.name)

    def start_sidecar(self, spec: SidecarSpec, info: TargetInfo) -> KubeSidecar:
        """An ephemeral debugger (join), a copy of the pod (snapshot) or a node pod (node)."""
        # Before anything is added or created: no stream could reach it through SOCKS.
        refuse_socks(self.kube.configuration.proxy)
        if spec.mode == "snapshot":
            return ourpods.start_copy(self.kube, spec, info)
        if spec.mode == "node":
            return ourpods.start_node_pod(self.kube, spec, info)
        return ephemeral.start_ephemeral(self.kube, spec, info)


class KubeRelay:
    """`forward` to a pod: one pods/portforward WebSocket per local connection."""

    def __init__(self, kube: KubeClient, pod: str) -> None:
        self._kube, self._pod = kube, pod
        self.id = f"{kube.namespace}/{pod}"

    def connect(self, port: int) -> PortStream:
        with self._kube.calls(f"forwarding port {port} of pod '{self._pod}'", self._pod):
            stream = connect(self._kube.configuration, self._kube.pods_path(self._pod, "portforward"),
                             [("ports", str(port))], protocols=V4, kind=PortStream)
        assert isinstance(stream, PortStream)
        return stream

    def remove(self) -> None:
        pass  # nothing was created in the cluster

