"""Test-side conveniences of the double: objects, waits, request log.

Each helper hops onto the double's loop (`call`), so tests never touch the store from their own
thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from . import pods

if TYPE_CHECKING:
    from .http import RequestRecord
    from .kubelet import Kubelet
    from .store import Store

Obj = dict[str, Any]
T = TypeVar("T")


class Helpers:
    """Mixed into ApiServerDouble."""

    if TYPE_CHECKING:
        store: Store
        kubelet: Kubelet | None
        node_name: str
        request_log: list[RequestRecord]

        def call(self, fn: Callable[..., T], *args: Any, timeout: float = 30,
                 **kwargs: Any) -> T: ...

        def _create(self, resource: str, namespace: str, obj: Obj) -> Obj: ...

    @property
    def me(self) -> Any:
        """This double, for the module functions that take one."""
        return self

    def create_namespace(self, name: str, labels: dict[str, str] | None = None) -> Obj:
        return self.call(self._create, "namespaces", "", {"metadata": {"name": name,
                                                                      "labels": labels or {}}})

    def label_namespace(self, name: str, labels: dict[str, str | None]) -> Obj:
        """Set labels (a None value removes one), e.g. Pod Security levels."""
        def change() -> Obj:
            ns = self.store.get("namespaces", "", name)
            assert ns is not None, f"no namespace {name}"
            current = ns["metadata"].setdefault("labels", {})
            for key, value in labels.items():
                if value is None:
                    current.pop(key, None)
                else:
                    current[key] = value
            return self.store.update("namespaces", ns)

        return self.call(change)

    def set_taints(self, taints: list[Obj]) -> Obj:
        def change() -> Obj:
            node = self.store.get("nodes", "", self.node_name)
            assert node is not None
            node["spec"]["taints"] = taints
            return self.store.update("nodes", node)

        return self.call(change)

    def create_pod(self, manifest: Obj, namespace: str = "default") -> Obj:
        """Create a pod as an admin would (defaulting, validation and Pod Security apply)."""
        return self.call(lambda: pods.create_pod(self.me, namespace, manifest)[0])

    def create_object(self, resource: str, manifest: Obj, namespace: str = "default") -> Obj:
        """Create a namespace, node, event, deployment or replicaset (controllers included)."""
        return self.call(self._create, resource, namespace, manifest)

    def get_pod(self, name: str, namespace: str = "default") -> Obj | None:
        return self.call(self.store.get, "pods", namespace, name)

    def delete_pod(self, name: str, namespace: str = "default", grace: int | None = 0) -> Obj:
        """Delete like the API does; grace=None uses the pod's terminationGracePeriodSeconds."""
        return self.call(pods.delete_pod, self.me, namespace, name, grace)

    def add_ephemeral_container(self, pod: str, container: Obj, namespace: str = "default") -> Obj:
        """Append an ephemeral container (validation and Pod Security apply, as for a PATCH)."""
        def add() -> Obj:
            current = self.store.get("pods", namespace, pod)
            assert current is not None, f"no pod {namespace}/{pod}"
            wanted = list(current["spec"].get("ephemeralContainers") or []) + [container]
            return pods.update_ephemeral(self.me, current, {"spec": {
                "ephemeralContainers": wanted}})[0]

        return self.call(add)

    def wait_for_deletion(self, name: str, namespace: str = "default",
                          timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.get_pod(name, namespace) is not None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"pod {namespace}/{name} still exists")
            time.sleep(0.05)

    def wait_for_pod(self, name: str, predicate: Callable[[Obj], bool], namespace: str = "default",
                     timeout: float = 30) -> Obj:
        deadline = time.monotonic() + timeout
        pod = None
        while time.monotonic() < deadline:
            pod = self.get_pod(name, namespace)
            if pod is not None and predicate(pod):
                return pod
            time.sleep(0.05)
        raise TimeoutError(f"pod {namespace}/{name} did not reach the condition: {pod}")

    def wait_for_container(self, pod: str, container: str, state: str = "running",
                           namespace: str = "default", timeout: float = 30) -> Obj:
        """Wait until a container (app, init or ephemeral) has `state`; returns its status."""
        def find(p: Obj) -> Obj | None:
            status = p.get("status") or {}
            for key in ("containerStatuses", "initContainerStatuses",
                        "ephemeralContainerStatuses"):
                for cs in status.get(key) or []:
                    if cs["name"] == container:
                        return cs  # type: ignore[no-any-return]
            return None

        def ready(p: Obj) -> bool:
            cs = find(p)
            return cs is not None and state in cs["state"]

        return find(self.wait_for_pod(pod, ready, namespace, timeout)) or {}

    def docker_id(self, pod: str, container: str, namespace: str = "default") -> str | None:
        """The Docker container currently backing a pod's container."""
        if self.kubelet is None:
            return None
        tracked = self.call(self.kubelet.tracked, namespace, pod, container)
        return tracked.docker_id if tracked else None

    # --- request log -----------------------------------------------------------------------
    def requests(self, method: str | None = None, path_contains: str | None = None,
                 user_agent_contains: str | None = None) -> list[RequestRecord]:
        return [r for r in list(self.request_log)
                if (method is None or r.method == method)
                and (path_contains is None or path_contains in r.path)
                and (user_agent_contains is None or user_agent_contains in r.user_agent)]

    def clear_requests(self) -> None:
        self.request_log.clear()
