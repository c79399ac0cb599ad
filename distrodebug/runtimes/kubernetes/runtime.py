"""The Kubernetes runtime: ephemeral debug containers through the official client.

The only module that imports the kubernetes package (kubestream.py drives the WebSocket with the
client's own helper). What is sent is built by pure functions (:func:`ephemeral_container`);
waits are bounded and end early on states the kubelet will not leave by itself.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from distrodebug import settings
from distrodebug.errors import EngineUnreachable, NoSuchTarget, PermissionDenied, TargetNotDebuggable
from distrodebug.model import ImageInfo, Mode, Privileges, SidecarSpec, TargetInfo, is_root_user
from distrodebug.runtimes.kubernetes import debugger as kubedebug
from distrodebug.runtimes.kubernetes import errors as kubeerrors
from distrodebug.runtimes.kubernetes import profiles as kubeprofiles
from distrodebug.runtimes.kubernetes.debugger import KubeSidecar
from distrodebug.runtimes.kubernetes.spec import (
    NAME_ALPHABET,
    container_state,
    container_status,
    debugger_name,
    ephemeral_container,
    pick_container,
)
from distrodebug.target import Target

__all__ = ["NAME_ALPHABET", "KubernetesRuntime", "debugger_name", "ephemeral_container"]

DEFAULT_REAPER = "/usr/local/bin/distrodebug-reaper"


class KubernetesRuntime:
    """The cluster kubectl would talk to: KUBECONFIG, --context, in-cluster config."""

    def __init__(self, context: str | None = None, namespace: str | None = None,
                 timeout: float = settings.DEFAULT_TIMEOUT, profile: str = "auto",
                 reuse: bool = False, copy: bool = False, keep: bool = False,
                 set_image: dict[str, str] | None = None) -> None:
        self.timeout = timeout
        self.profile = profile
        self.reuse = reuse
        self.copy = copy or bool(set_image)
        self.keep = keep
        self.set_image = set_image
        self.configuration = client.Configuration()
        try:
            config.load_kube_config(context=context, client_configuration=self.configuration)
            _, active = config.list_kube_config_contexts()
            if context:
                active = next((c for c in config.list_kube_config_contexts()[0]
                               if c["name"] == context), active)
            default_ns = (active or {}).get("context", {}).get("namespace") or "default"
        except (ConfigException, FileNotFoundError, TypeError) as exc:
            try:
                config.load_incluster_config(client_configuration=self.configuration)
            except ConfigException:
                raise EngineUnreachable(
                    f"No Kubernetes configuration was found ({exc}).",
                    "Point KUBECONFIG at a kubeconfig file, pass --context, or run inside a pod "
                    "with a service account.",
                ) from None
            with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as handle:
                default_ns = handle.read().strip()
        self.namespace = namespace or default_ns
        self.endpoint = self.configuration.host
        self.api = client.ApiClient(self.configuration)
        self.core = client.CoreV1Api(self.api)
        self._last_read: tuple[float, dict[str, Any]] = (0.0, {})

    @contextlib.contextmanager
    def calls(self, what: str, pod: str = "") -> Iterator[None]:
        """Translate API and transport errors raised while doing ``what``."""
        with self._calls(what, pod):
            yield

    @contextlib.contextmanager
    def _calls(self, what: str, pod: str = "") -> Iterator[None]:
        try:
            yield
        except ApiException as exc:
            raise kubeerrors.translate(exc, what, pod, self.namespace) from None
        except Exception as exc:  # urllib3 and socket errors: the API is out of reach
            if type(exc).__module__.startswith(("urllib3", "socket", "ssl")) or isinstance(exc, OSError):
                raise EngineUnreachable(
                    f"The Kubernetes API at {self.endpoint} cannot be reached: {exc}.",
                    "Check the cluster address with 'kubectl cluster-info' and your network.",
                ) from None
            raise

    def _json(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        response = method(*args, _preload_content=False, **kwargs)
        return json.loads(response.data)

    def add_ephemeral(self, pod: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._calls(f"adding an ephemeral debug container to pod '{pod}'", pod):
            return self._json(self.core.patch_namespaced_pod_ephemeralcontainers, pod, self.namespace,
                              {"spec": {"ephemeralContainers": [body]}})

    def create_pod(self, manifest: dict[str, Any]) -> dict[str, Any]:
        name = manifest["metadata"]["name"]
        with self._calls(f"creating pod '{name}'", name):
            return self._json(self.core.create_namespaced_pod, self.namespace, manifest)

    def delete_pod(self, name: str) -> None:
        with contextlib.suppress(ApiException), self._calls(f"deleting pod '{name}'", name):
            self.core.delete_namespaced_pod(name, self.namespace, grace_period_seconds=0,
                                            _preload_content=False)

    def list_ours(self) -> list[dict[str, Any]]:
        """Pod copies and node pods of ours in the namespace, as leftovers.classify takes them."""
        tool = f"{settings.LABEL_TOOL}={settings.TOOL}"
        with self._calls("listing our pods"):
            pods = self._json(self.core.list_namespaced_pod, self.namespace, label_selector=tool)
        found = []
        for pod in pods.get("items") or []:
            meta = pod["metadata"]
            labels = dict(meta.get("labels") or {})
            expires = (meta.get("annotations") or {}).get("io.distrodebug.expires", "")
            if expires and expires < time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()):
                labels[settings.LABEL_OWNER] = ""  # past its expiry: a leftover whoever made it
            found.append({"kind": "pod", "id": meta["name"], "name": meta["name"],
                          "state": (pod.get("status") or {}).get("phase", ""), "labels": labels})
        return found

    def remove_objects(self, objects: list[tuple[str, str]]) -> None:
        for kind, name in objects:
            if kind == "pod":
                self.delete_pod(name)

    def read_pod(self, name: str) -> dict[str, Any]:
        with self._calls(f"reading pod '{name}'", name):
            pod = self._json(self.core.read_namespaced_pod, name, self.namespace)
        self._last_read = (time.monotonic(), pod)
        return pod

    # -- targets -------------------------------------------------------------------------------
    def inspect(self, target: Target) -> TargetInfo:
        if target.namespace:
            self.namespace = target.namespace
        if target.kind == "node":
            with self._calls(f"reading node '{target.name}'", target.name):
                node = self._json(self.core.read_node, target.name)
            return TargetInfo(id=target.name, name=target.name, image="", image_id="", status="node",
                              raw=node, container="debugger", namespace=self.namespace)
        pod = self._resolve_pod(target)
        container, note = pick_container(pod, target.container)
        spec = next(c for c in pod["spec"]["containers"] if c["name"] == container)
        status = container_state(container_status(pod, container) or {}, time.time())
        sec = kubeprofiles.pod_security(pod, container, None)
        return TargetInfo(
            id=pod["metadata"]["name"], name=pod["metadata"]["name"], image=spec.get("image", ""),
            image_id=(container_status(pod, container) or {}).get("imageID", ""), status=status,
            user="" if sec.run_as_user is None else str(sec.run_as_user),
            read_only=sec.read_only_root, workdir=spec.get("workingDir") or "/",
            entrypoint=tuple(spec.get("command") or ()), cmd=tuple(spec.get("args") or ()),
            labels=(pod["metadata"].get("labels") or {}), raw=pod, container=container,
            namespace=self.namespace, note=note,
        )

    def _resolve_pod(self, target: Target) -> dict[str, Any]:
        if target.kind == "pod":
            return self.read_pod(target.name)
        if target.kind != "workload":
            raise TargetNotDebuggable(f"'{target}' cannot be debugged with an ephemeral container.",
                                      "Name a pod (pod/NAME) or a workload (deploy/NAME).")
        with self._calls(f"reading {target.resource} '{target.name}'", target.name):
            apps = client.AppsV1Api(self.api)
            reader = {"deployment": apps.read_namespaced_deployment,
                      "statefulset": apps.read_namespaced_stateful_set,
                      "daemonset": apps.read_namespaced_daemon_set,
                      "replicaset": apps.read_namespaced_replica_set}.get(target.resource or "")
            if reader is None:
                selector = {"job-name": target.name}
            else:
                selector = self._json(reader, target.name, self.namespace)["spec"]["selector"].get(
                    "matchLabels") or {}
            text = ",".join(f"{k}={v}" for k, v in selector.items())
            pods = self._json(self.core.list_namespaced_pod, self.namespace, label_selector=text)
        running = [p for p in pods.get("items") or [] if (p.get("status") or {}).get("phase") == "Running"]
        if not running:
            raise NoSuchTarget(f"{target.resource} '{target.name}' has no running pod.",
                               f"Check it with 'kubectl get pods -l {text} -n {self.namespace}'.")
        return sorted(running, key=lambda p: p["metadata"]["name"])[0]

    def target_state(self, info: TargetInfo) -> str:
        read_at, pod = self._last_read
        try:
            if time.monotonic() - read_at > 2 or pod.get("metadata", {}).get("name") != info.name:
                pod = self._json(self.core.read_namespaced_pod, info.name, self.namespace)
        except ApiException as exc:
            return "removed" if exc.status == 404 else "unknown"
        except Exception:
            return "unknown"
        state = (container_status(pod, info.container) or {}).get("state") or {}
        return "running" if state.get("running") else "exited"

    def ensure_image(self, ref: str, notice: Callable[[str], None]) -> ImageInfo:
        # The kubelet pulls; all we can know in advance is whether it is our own toolbox.
        labels = {settings.LABEL_REAPER: DEFAULT_REAPER} if ref == settings.DEFAULT_IMAGE else {}
        return ImageInfo(ref=ref, id="", labels=labels)

    def privileges(self, info: TargetInfo, *, user: str | None, cap_add: tuple[str, ...],
                   privileged: bool) -> tuple[Mode, Privileges]:
        if info.status == "node":
            profile = "general" if self.profile == "auto" else self.profile
            return "node", Privileges(user="", cap_add=(), privileged=profile == "sysadmin",
                                      view="proc", reason="kubectl's node debugging pod: the host's root "
                                      "is at /host" if profile in ("general", "sysadmin", "legacy") else
                                      f"profile {profile}: no host root", profile=profile)
        if self.copy:
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
        needs_level = (self.profile in ("general", "netadmin", "sysadmin") or cap_add or privileged
                       or (self.profile == "auto" and not sec.run_as_user and not sec.run_as_non_root))
        if needs_level:
            sec = kubeprofiles.pod_security(info.raw, info.container, self._namespace_labels())
        choice = kubeprofiles.choose(self.profile, sec)
        ctx = dict(choice.security_context or {})
        if user is not None:
            uid, _, gid = user.partition(":")
            ctx["runAsUser"] = int(uid)
            if gid:
                ctx["runAsGroup"] = int(gid)
        if cap_add:
            caps = ctx.setdefault("capabilities", {})
            caps["add"] = list(dict.fromkeys([*caps.get("add", []), *cap_add]))
        if privileged:
            ctx["privileged"] = True
        view = choice.view if user is None else ("chroot" if is_root_user(user) else "proc")
        if not self.copy:
            mode = "join"
        return mode, Privileges(
            user=str(ctx.get("runAsUser", "")), cap_add=tuple((ctx.get("capabilities") or {}).get("add", [])),
            privileged=bool(ctx.get("privileged")), view=view, reason=choice.reason,  # type: ignore[arg-type]
            security_context=ctx or None, profile=choice.profile,
        )

    def dump_meta(self, info: TargetInfo) -> tuple[dict[str, Any], dict[str, str] | None]:
        """The pod object, its recent events and logs, and the container's declared env."""
        meta: dict[str, Any] = {"pod.json": dict(info.raw)}
        with self._calls(f"reading events of pod '{info.name}'", info.name):
            try:
                events = self._json(self.core.list_namespaced_event, self.namespace,
                                    field_selector=f"involvedObject.name={info.name}")
                meta["events.json"] = events.get("items") or []
            except PermissionDenied:
                meta["events.json"] = []
            try:
                response = self.core.read_namespaced_pod_log(
                    info.name, self.namespace, container=info.container, tail_lines=1000,
                    timestamps=True, _preload_content=False)
                meta["logs.txt"] = bytes(getattr(response, "data", b"")).decode("utf-8", "replace")
            except ApiException:
                meta["logs.txt"] = ""
        spec = next(c for c in info.raw["spec"]["containers"] if c["name"] == info.container)
        meta["environment.json"] = [
            f"{e['name']}={e['value']}" if "value" in e
            else f"{e['name']}=<from {sorted(e.get('valueFrom', {}))}>"
            for e in spec.get("env") or []
        ]
        return meta, None

    def server_version(self) -> str:
        with self._calls("reading the server version"):
            return str(client.VersionApi(self.api).get_code().git_version)

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
        with self._calls(f"checking '{verb} {resource}'"):
            review = self._json(client.AuthorizationV1Api(self.api).create_self_subject_access_review,
                                body)
        status = review.get("status") or {}
        return bool(status.get("allowed")), str(status.get("reason") or "")

    def namespace_labels(self) -> dict[str, str] | None:
        return self._namespace_labels()

    def _namespace_labels(self) -> dict[str, str] | None:
        try:
            ns = self._json(self.core.read_namespace, self.namespace)
        except Exception:  # no permission to read namespaces: decide without the label
            return None
        return dict((ns.get("metadata") or {}).get("labels") or {})

    # -- the debugger ---------------------------------------------------------------------------
    def start_sidecar(self, spec: SidecarSpec, info: TargetInfo) -> KubeSidecar:
        """An ephemeral debugger (join), a copy of the pod (snapshot) or a node pod (node)."""
        return kubedebug.start(self, spec, info)
