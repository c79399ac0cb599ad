"""A kubelet on the real Docker engine (node level): binds pods to the one node, keeps one
`PodWorker` per pod (podworker.py), and removes everything it created when the double stops.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from .dockerapi import DockerAPI, DockerError
from .podstatus import Tracked, now, unschedulable_message
from .podworker import PodWorker
from .store import Store

Obj = dict[str, Any]
EventSink = Callable[[Obj, str, str, str], None]


class Kubelet:
    def __init__(self, *, double_id: str, store: Store, docker: DockerAPI, node_name: str,
                 infra_image: str, infra_command: list[str], event: EventSink) -> None:
        self.double_id = double_id
        self.store = store
        self.docker = docker
        self.node_name = node_name
        self.infra_image = infra_image
        self.infra_command = infra_command
        self.event = event
        self.host_ip = "172.17.0.1"
        self.crash_backoff = (1.0, 2.0)  # first delay, cap (the real kubelet: 10s, 5min)
        self.pull_backoff = 1.0
        self.workers: dict[str, PodWorker] = {}
        self.errors: list[str] = []
        self.stopping = False

    async def start(self) -> None:
        with contextlib.suppress(DockerError, KeyError, IndexError):
            bridge = await self.docker.request("GET", "/networks/bridge")
            self.host_ip = bridge["IPAM"]["Config"][0]["Gateway"]

    def on_store(self, resource: str, etype: str, obj: Obj, old: Obj | None) -> None:
        if resource != "pods":
            return
        uid = obj["metadata"]["uid"]
        worker = self.workers.get(uid)
        if etype == "DELETED":
            if worker:
                worker.gone = True
                worker.wake.set()
            return
        node = obj["spec"].get("nodeName")
        if not node and etype == "ADDED":
            asyncio.get_running_loop().call_soon(self.schedule, obj)
        elif node == self.node_name and worker is None and not self.stopping:
            self.workers[uid] = PodWorker(self, obj)
        elif worker:
            worker.wake.set()

    def schedule(self, pod: Obj) -> None:
        """The scheduler's part: bind to our one node unless its taints are not tolerated."""
        meta = pod["metadata"]
        current = self.store.get("pods", meta["namespace"], meta["name"])
        node = self.store.get("nodes", "", self.node_name)
        if current is None or current["metadata"]["uid"] != meta["uid"] or node is None:
            return
        message = unschedulable_message(current, node)
        if message:
            current["status"]["conditions"] = [{
                "type": "PodScheduled", "status": "False", "lastProbeTime": None,
                "lastTransitionTime": now(), "reason": "Unschedulable", "message": message}]
            self.event(current, "FailedScheduling", message, "Warning")
        else:
            current["spec"]["nodeName"] = self.node_name
            self.event(current, "Scheduled", f"Successfully assigned {meta['namespace']}/"
                                             f"{meta['name']} to {self.node_name}", "Normal")
        self.store.update("pods", current)

    def tracked(self, namespace: str, pod: str, container: str) -> Tracked | None:
        for worker in self.workers.values():
            if (worker.ns, worker.name) == (namespace, pod) and not worker.gone:
                return worker.tracked.get(container)
        return None

    async def stop(self) -> None:
        self.stopping = True
        for worker in list(self.workers.values()):
            worker.task.cancel()
        await asyncio.gather(*(w.task for w in self.workers.values()), return_exceptions=True)
        await remove_everything(self.docker, self.double_id)


async def remove_everything(docker: DockerAPI, double_id: str) -> None:
    """Force-remove every container and volume this double instance labelled."""
    flt = {"label": [f"io.distrodebug.k8s-double={double_id}"]}
    with contextlib.suppress(DockerError):
        found = await docker.request("GET", "/containers/json",
                                     params={"all": True, "filters": flt})
        await asyncio.gather(*(
            docker.request("DELETE", f"/containers/{c['Id']}", params={"force": True, "v": True})
            for c in found), return_exceptions=True)
        volumes = await docker.request("GET", "/volumes", params={"filters": flt})
        await asyncio.gather(*(
            docker.request("DELETE", f"/volumes/{v['Name']}", params={"force": True})
            for v in volumes.get("Volumes") or []), return_exceptions=True)
