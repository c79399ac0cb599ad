"""`ApiServerDouble`: start/stop, kubeconfig, and the knobs tests turn.

The double runs in its own thread with its own asyncio loop (aiohttp on 127.0.0.1, a free port,
plain HTTP with bearer tokens). Test-side helpers hop onto that loop, so the store is only ever
touched from one thread.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import json
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from aiohttp import web

from . import discovery
from .dockerapi import DockerAPI, DockerError
from .helpers import Helpers
from .http import RequestRecord, build_app
from .kubelet import Kubelet
from .podstatus import now
from .rbac import Authorizer, Rule
from .routes import dispatch, new_object
from .status import ApiError
from .store import Store
from .streaming import ALL_PROTOCOLS
from .tls import ca_pem, server_context

T = TypeVar("T")
Obj = dict[str, Any]
ADMIN = "admin"


class ApiServerDouble(Helpers):
    """A kube-apiserver stand-in whose pods run on the local Docker engine.

    engine=False serves the API only: pods stay Pending (unscheduled) and never start.
    infra_image/infra_command: the image and command of each pod's sandbox ("pause")
    container; the image must contain `sleep` (busybox or the toolbox image).
    """

    def __init__(self, *, engine: bool = True, infra_image: str = "distrodebug-test/k8s-busybox:1",
                 infra_command: tuple[str, ...] = ("sleep", "2147483647"),
                 version: str = "v1.30.14", node_name: str = "node-1",
                 workdir: str | Path | None = None, docker_host: str | None = None) -> None:
        self.id = secrets.token_hex(4)
        self.engine = engine
        self.infra_image, self.infra_command = infra_image, list(infra_command)
        self.version = version
        self.node_name = node_name
        self.docker_host = docker_host
        self.ephemeral_containers = True  # False: a cluster without the subresource (404)
        self.stream_protocols: tuple[str, ...] = ALL_PROTOCOLS
        self.ws_requires_create = False  # True: 1.35's rule (WebSocket exec/attach need create)
        self.store = Store()
        self.authorizer = Authorizer()
        self.admin_token = secrets.token_hex(16)
        self.authorizer.add_user(ADMIN, self.admin_token)
        self.request_log: list[RequestRecord] = []
        self.errors: list[str] = []
        self.kubelet: Kubelet | None = None
        self.docker: DockerAPI = DockerAPI(docker_host)
        self._tmp = tempfile.TemporaryDirectory(prefix=f"k8s-double-{self.id}-")
        self.workdir = Path(workdir) if workdir else Path(self._tmp.name)
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._event_keys: dict[tuple[str, ...], str] = {}

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> ApiServerDouble:
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            assert self._loop
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self._astart())
            except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread
                failure.append(err)
                self._loop.run_until_complete(self.docker.close())
                self._loop.close()
                ready.set()
                return
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

        self._thread = threading.Thread(target=run, name=f"k8s-double-{self.id}", daemon=True)
        self._thread.start()
        ready.wait(60)
        if failure:
            self._thread.join(5)
            raise failure[0]
        self.write_kubeconfig(ADMIN, self.kubeconfig)
        # a script that never calls stop() still removes its containers when it exits
        atexit.register(self.stop)
        return self

    async def _astart(self) -> None:
        for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self._create("namespaces", "", {"metadata": {"name": name}})
        if self.engine:
            await self.docker.open()
            try:
                await self.docker.request("GET", f"/images/{quote(self.infra_image, safe='')}/json")
            except DockerError as err:
                raise RuntimeError(
                    f"the double's infra image {self.infra_image!r} is not on the engine "
                    "(pass infra_image=, any local image with `sleep`)") from err
            self.kubelet = Kubelet(double_id=self.id, store=self.store, docker=self.docker,
                                   node_name=self.node_name, infra_image=self.infra_image,
                                   infra_command=self.infra_command, event=self.record_event)
            await self.kubelet.start()
            self.store.listeners.append(self.kubelet.on_store)
        self._create("nodes", "", self._node())
        app = build_app(self, dispatch)
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None,
                                     shutdown_timeout=0.25)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0,
                           ssl_context=server_context(self.workdir))
        await site.start()
        self.port = self._runner.addresses[0][1]

    def stop(self) -> None:
        atexit.unregister(self.stop)
        if self._loop and self._thread and self._thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(self._astop(), self._loop).result(60)
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(15)
        self._tmp.cleanup()

    async def _astop(self) -> None:
        if self._runner:
            await self._runner.cleanup()
        if self.kubelet:
            await self.kubelet.stop()
        await self.docker.close()

    def __enter__(self) -> ApiServerDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def call(self, fn: Callable[..., T], *args: Any, timeout: float = 30, **kwargs: Any) -> T:
        """Run `fn` on the double's loop (store access is single-threaded) and return its result."""
        assert self._loop

        async def hop() -> T:
            return fn(*args, **kwargs)

        return asyncio.run_coroutine_threadsafe(hop(), self._loop).result(timeout)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        assert self._loop
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    # --- access ----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> str:
        """The CA bundle (the serving certificate itself) for clients that want a path."""
        path = self.workdir / "ca.crt"
        if not path.exists():
            path.write_bytes(ca_pem())
        return str(path)

    @property
    def kubeconfig(self) -> str:
        return str(self.workdir / "kubeconfig")

    def write_kubeconfig(self, user: str, path: str | Path, namespace: str = "default") -> str:
        """A kubeconfig (JSON is valid YAML) with one context `double` for `user`."""
        token = self.authorizer.users[user].token
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "double",
            "clusters": [{"name": "double", "cluster": {
                "server": self.url,
                "certificate-authority-data": base64.b64encode(ca_pem()).decode()}}],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [{"name": "double", "context": {"cluster": "double", "user": user,
                                                         "namespace": namespace}}],
            "preferences": {},
        }
        Path(path).write_text(json.dumps(config, indent=2))
        return str(path)

    def token(self, user: str = ADMIN) -> str:
        return self.authorizer.users[user].token

    def kubeconfig_for(self, user: str, namespace: str = "default") -> str:
        return self.write_kubeconfig(user, self.workdir / f"kubeconfig-{user}", namespace)

    # --- RBAC ------------------------------------------------------------------------------
    def add_user(self, name: str, *, allow_all: bool = True) -> str:
        """Add a user (with everything allowed unless allow_all=False); returns its token."""
        return self.authorizer.add_user(name, secrets.token_hex(16), allow_all).token

    def deny(self, verb: str, resource: str, subresource: str | None = None, *,
             user: str = ADMIN, namespace: str | None = None, name: str | None = None,
             group: str | None = None) -> None:
        """Take one permission away, e.g. deny("patch", "pods", "ephemeralcontainers")."""
        self.authorizer.users[user].deny.append(
            Rule(verb, resource, subresource, namespace, name, group))

    def allow(self, verb: str, resource: str, subresource: str | None = None, *,
              user: str = ADMIN, namespace: str | None = None, name: str | None = None,
              group: str | None = None) -> None:
        self.authorizer.users[user].allow.append(
            Rule(verb, resource, subresource, namespace, name, group))

    def restrict(self, user: str = ADMIN) -> None:
        """From now on `user` may only do what `allow` grants."""
        self.authorizer.users[user].allow_all = False

    def revoke(self, user: str = ADMIN) -> None:
        """Make the user's token invalid (401), like expired credentials."""
        self.authorizer.revoked.add(self.authorizer.users[user].token)

    # --- objects ---------------------------------------------------------------------------
    def _create(self, resource: str, namespace: str, obj: Obj) -> Obj:
        res = next(r for r in discovery.RESOURCES.values() if r.name == resource)
        return new_object(self, res, namespace, obj)

    def _node(self) -> Obj:
        host_ip = self.kubelet.host_ip if self.kubelet else "172.17.0.1"
        capacity = {"cpu": "2", "memory": "4Gi", "pods": "110", "ephemeral-storage": "20Gi"}
        return {
            "metadata": {"name": self.node_name, "labels": {
                "kubernetes.io/hostname": self.node_name, "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64"}},
            "spec": {"podCIDR": "172.17.0.0/16", "taints": []},
            "status": {
                "capacity": capacity, "allocatable": capacity,
                "addresses": [{"type": "InternalIP", "address": host_ip},
                              {"type": "Hostname", "address": self.node_name}],
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                "message": "kubelet is posting ready status",
                                "lastHeartbeatTime": now(), "lastTransitionTime": now()}],
                "nodeInfo": {"kubeletVersion": self.version, "kubeProxyVersion": self.version,
                             "containerRuntimeVersion": "docker://20.10.24",
                             "operatingSystem": "linux", "architecture": "amd64",
                             "osImage": "API-server double", "kernelVersion": "",
                             "machineID": "", "systemUUID": "", "bootID": ""},
            },
        }

    # --- events ----------------------------------------------------------------------------
    def record_event(self, obj: Obj, reason: str, message: str, etype: str = "Normal") -> None:
        """Create or bump an Event about `obj` (runs on the loop)."""
        meta = obj["metadata"]
        key = (meta.get("uid", ""), reason, message)
        stamp = now()
        existing = self._event_keys.get(key)
        if existing:
            event = self.store.get("events", meta.get("namespace", ""), existing)
            if event is not None:
                event["count"] = event.get("count", 1) + 1
                event["lastTimestamp"] = stamp
                self.store.update("events", event)
                return
        # like the real ones: <object>.<unix nanoseconds in hex>, so names sort by time
        name = f"{meta['name']}.{time.time_ns():x}"
        self._event_keys[key] = name
        event = {
            "metadata": {"name": name},
            "involvedObject": {"kind": obj.get("kind", "Pod"), "namespace": meta.get("namespace"),
                               "name": meta["name"], "uid": meta.get("uid"),
                               "apiVersion": obj.get("apiVersion", "v1")},
            "reason": reason, "message": message, "type": etype, "count": 1,
            "source": {"component": "kubelet", "host": self.node_name},
            "firstTimestamp": stamp, "lastTimestamp": stamp,
            "reportingComponent": "kubelet", "reportingInstance": self.node_name,
        }
        try:
            self._create("events", meta.get("namespace", "default"), event)
        except ApiError:
            pass  # the namespace is gone; so is the need for the event
