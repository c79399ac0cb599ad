"""The Kubernetes runtime: ephemeral debug containers through the official client.

The only module that imports the kubernetes package (kubestream.py drives the WebSocket with the
client's own helper). What is sent is built by pure functions (:func:`ephemeral_container`);
waits are bounded and end early on states the kubelet will not leave by itself.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from .. import kubeerrors, kubeprofiles, settings
from ..errors import (
    EngineUnreachable,
    NoSuchTarget,
    PermissionDenied,
    SidecarFailed,
    TargetNotDebuggable,
)
from ..kubespec import (
    NAME_ALPHABET,
    all_names,
    container_status,
    debugger_name,
    ephemeral_container,
    long_script_on_stdin,
    pick_container,
)
from ..profiles import Privileges
from ..target import Target
from .base import ImageInfo, Mode, SidecarSpec, TargetInfo
from .kubestream import WebSocketStream, connect, exit_code_from_status

__all__ = ["NAME_ALPHABET", "KubernetesRuntime", "debugger_name", "ephemeral_container"]

#: Waiting reasons the kubelet will not get out of by itself in the time we wait.
FATAL_WAITING = {"ErrImagePull", "ImagePullBackOff", "CreateContainerConfigError",
                 "InvalidImageName", "CreateContainerError", "RunContainerError", "ErrImageNeverPull"}
#: How long an exec debugger idles, waiting for more `exec` calls to reuse it, before it exits.
IDLE_SECONDS = 600
DEFAULT_REAPER = "/usr/local/bin/distrodebug-reaper"


class KubeSidecar:
    """A debug container in a pod and the stream attached to it."""

    def __init__(self, runtime: KubernetesRuntime, pod: str, name: str, exec_mode: bool) -> None:
        self._runtime = runtime
        self.pod = pod
        self.name = name
        self.id = f"{runtime.namespace}/{pod}/{name}"
        self._stream: WebSocketStream | None = None
        self.exec_mode = exec_mode
        self.notes: list[str] = []

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
            pod = self._runtime.read_pod(self.pod)
            state = (container_status(pod, self.name) or {}).get("state") or {}
            if state.get("terminated"):
                code = int(state["terminated"].get("exitCode", 0))
                self.notes.append(f"debug container {self.name} exited with status {code}; "
                                  "ephemeral containers stay listed in the pod but hold nothing")
                return code
            time.sleep(0.2)
        self.notes.append(
            f"the debugger {self.name} is still running: reattach with 'kubectl attach "
            f"{self.pod} -c {self.name} -i -t -n {self._runtime.namespace}'")
        return 0

    def remove(self) -> None:
        # Ephemeral containers cannot be removed; closing the stream ends a stdinOnce debugger.
        if self._stream is not None:
            self._stream.close_write()
            self._stream.close()


class KubernetesRuntime:
    """The cluster kubectl would talk to: KUBECONFIG, --context, in-cluster config."""

    def __init__(self, context: str | None = None, namespace: str | None = None,
                 timeout: float = settings.DEFAULT_TIMEOUT, profile: str = "auto",
                 reuse: bool = False) -> None:
        self.timeout = timeout
        self.profile = profile
        self.reuse = reuse
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

    def read_pod(self, name: str) -> dict[str, Any]:
        with self._calls(f"reading pod '{name}'", name):
            pod = self._json(self.core.read_namespaced_pod, name, self.namespace)
        self._last_read = (time.monotonic(), pod)
        return pod

    # -- targets -------------------------------------------------------------------------------
    def inspect(self, target: Target) -> TargetInfo:
        if target.namespace:
            self.namespace = target.namespace
        pod = self._resolve_pod(target)
        container, note = pick_container(pod, target.container)
        spec = next(c for c in pod["spec"]["containers"] if c["name"] == container)
        state = (container_status(pod, container) or {}).get("state") or {}
        waiting = (state.get("waiting") or {}).get("reason")
        status = "running" if state.get("running") else (
            "restarting" if waiting == "CrashLoopBackOff" else "exited" if state.get("terminated")
            else "created")
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
        if info.status != "running":
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
        view = choice.view if user is None else ("chroot" if user.split(":")[0] == "0" else "proc")
        return "join", Privileges(
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
        attrs = {"namespace": self.namespace, "verb": verb, "resource": resource}
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

    # -- the debugger --------------------------------------------------------------------------
    def start_sidecar(self, spec: SidecarSpec, info: TargetInfo) -> KubeSidecar:
        exec_mode = not spec.tty
        pod = info.raw
        name = self._reusable(pod, spec) if (exec_mode or self.reuse) else None
        if name is None:
            name = debugger_name(all_names(pod))
            body_spec = spec
            if exec_mode:
                idle = (spec.argv[0],) if spec.argv[0].endswith("reaper") else ()
                body_spec = _replace_argv(spec, (*idle, "sleep", str(IDLE_SECONDS)))
            body = ephemeral_container(body_spec, name, info.container, spec.security_context)
            with self._calls(f"adding an ephemeral debug container to pod '{info.name}'", info.name):
                patched = self._json(
                    self.core.patch_namespaced_pod_ephemeralcontainers, info.name, self.namespace,
                    {"spec": {"ephemeralContainers": [body]}},
                )
            self._wait_running(info.name, name, patched["metadata"]["resourceVersion"])
        sidecar = KubeSidecar(self, info.name, name, exec_mode or self.reuse)
        base = f"/api/v1/namespaces/{self.namespace}/pods/{info.name}"
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
        with self._calls(f"attaching to {name}", info.name):
            sidecar._stream = connect(self.configuration, path, query)
            if preamble:
                sidecar._stream.send(preamble)
        return sidecar

    def _reusable(self, pod: Mapping[str, Any], spec: SidecarSpec) -> str | None:
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

    def _wait_running(self, pod: str, name: str, resource_version: str) -> None:
        deadline = time.monotonic() + self.timeout
        stream = watch.Watch()
        with self._calls(f"waiting for {name}", pod):
            while time.monotonic() < deadline:
                for event in stream.stream(
                    self.core.list_namespaced_pod, self.namespace,
                    field_selector=f"metadata.name={pod}", resource_version=resource_version,
                    timeout_seconds=max(1, int(deadline - time.monotonic())),
                    _request_timeout=self.timeout + 5,
                ):
                    obj = self.api.sanitize_for_serialization(event["object"])
                    resource_version = obj["metadata"]["resourceVersion"]
                    if event["type"] == "DELETED":
                        raise TargetNotDebuggable(f"Pod '{pod}' was deleted while we waited.", "")
                    if self._ready(obj, name):
                        stream.stop()
                        return
        raise SidecarFailed(
            f"The debug container {name} did not start within {self.timeout:.0f} seconds.",
            f"See 'kubectl describe pod {pod} -n {self.namespace}'; raise the wait with --timeout.",
        )

    def _ready(self, pod: Mapping[str, Any], name: str) -> bool:
        state = (container_status(pod, name) or {}).get("state") or {}
        if state.get("running") or state.get("terminated"):
            return True
        waiting = state.get("waiting") or {}
        if waiting.get("reason") in FATAL_WAITING:
            raise kubeerrors.waiting_failed(name, waiting, pod["metadata"]["name"], self.namespace)
        return False


def _replace_argv(spec: SidecarSpec, argv: tuple[str, ...]) -> SidecarSpec:
    import dataclasses

    return dataclasses.replace(spec, argv=argv, stdin=False)
