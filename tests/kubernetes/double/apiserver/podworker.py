"""One pod on the Docker engine, from sandbox to teardown.

A worker creates the pod's sandbox (infra container + emptyDir volumes), starts init containers
one by one, then the app containers, then each ephemeral container once. It restarts exited
containers per restartPolicy with a short CrashLoopBackOff, reports image pulls that cannot
succeed (nothing is ever pulled), and writes the pod status back to the store after every
change, which is what feeds watch events. Exits are observed with one long-polling
`POST /containers/{id}/wait` per container.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .containers import (
    INFRA,
    container_body,
    docker_name,
    format_pod,
    infra_body,
    labels,
    pull_error,
    verify_non_root,
    volume_name,
)
from .dockerapi import DockerError
from .podstatus import (
    Conditions,
    Tracked,
    now,
    phase,
    should_restart,
    terminated_state,
    waiting,
)

if TYPE_CHECKING:
    from .kubelet import Kubelet

Obj = dict[str, Any]


def _go_seconds(value: float) -> str:
    return f"{value:g}s" if value >= 1 else f"{int(value * 1000)}ms"


def _stamp(docker_time: str) -> str:
    return docker_time[:19] + "Z" if docker_time and not docker_time.startswith("0001") else now()


class PodWorker:
    def __init__(self, kubelet: Kubelet, pod: Obj) -> None:
        self.k = kubelet
        meta = pod["metadata"]
        self.ns, self.name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.wake = asyncio.Event()
        self.gone = False
        self.torn_down = False
        self.infra_id: str | None = None
        self.pod_ip = ""
        self.tracked: dict[str, Tracked] = {}
        self.conditions = Conditions()
        self.start_time = now()
        self.waits: set[asyncio.Task[None]] = set()
        has_init = bool(pod["spec"].get("initContainers"))
        for kind, key in (("init", "initContainers"), ("app", "containers")):
            for c in pod["spec"].get(key) or []:
                t = self.track(c, kind)
                if kind == "app" and has_init:
                    t.state = waiting("PodInitializing")
        self.task = asyncio.create_task(self.run())

    def track(self, c: Obj, kind: str) -> Tracked:
        if c["name"] not in self.tracked:
            self.tracked[c["name"]] = Tracked(c["name"], kind, image=c.get("image", ""))
        return self.tracked[c["name"]]

    def current(self) -> Obj | None:
        pod = self.k.store.get("pods", self.ns, self.name)
        return pod if pod and pod["metadata"]["uid"] == self.uid else None

    async def run(self) -> None:
        try:
            self.publish()  # ContainerCreating first, as watchers of a real kubelet see it
            while not self.gone:
                self.wake.clear()
                pod = self.current()
                if pod is None:
                    break
                if pod["metadata"].get("deletionTimestamp"):
                    await self.terminate(pod)
                    break
                delay = await self.sync(pod)
                self.publish()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), delay)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - a test must see this, not a hung pod
            self.k.errors.append(f"kubelet worker {self.ns}/{self.name}: {err!r}")
            raise
        finally:
            if not self.k.stopping:
                await self.teardown()
                self.k.workers.pop(self.uid, None)

    async def sandbox(self, pod: Obj) -> bool:
        docker, k = self.k.docker, self.k
        try:
            for v in pod["spec"].get("volumes") or []:
                if "emptyDir" in v:
                    made = await docker.request("POST", "/volumes/create", body={
                        "Name": volume_name(k.double_id, pod, v["name"]),
                        "Labels": labels(k.double_id, pod, v["name"])})
                    # The kubelet makes an emptyDir 0777 so any container user may write to it.
                    with contextlib.suppress(OSError, KeyError, TypeError):
                        os.chmod(made["Mountpoint"], 0o777)
            body = infra_body(k.double_id, pod, k.infra_image, k.infra_command)
            created = await docker.request("POST", "/containers/create",
                                           params={"name": docker_name(pod, INFRA, 0)}, body=body)
            self.infra_id = created["Id"]
            await docker.request("POST", f"/containers/{self.infra_id}/start")
            info = await docker.request("GET", f"/containers/{self.infra_id}/json")
            self.pod_ip = info["NetworkSettings"].get("IPAddress") or k.host_ip
            return True
        except DockerError as err:
            k.event(pod, "FailedCreatePodSandBox",
                    f"Failed to create pod sandbox: {err.message}", "Warning")
            if self.infra_id:  # created but not started: free the name for the retry
                await self.remove(self.infra_id)
                self.infra_id = None
            return False

    async def sync(self, pod: Obj) -> float | None:
        if not self.infra_id and not await self.sandbox(pod):
            return 2.0
        spec, policy = pod["spec"], pod["spec"].get("restartPolicy", "Always")
        clock = asyncio.get_running_loop().time()
        delays: list[float | None] = []
        init_done = True
        for c in spec.get("initContainers") or []:
            t = self.track(c, "init")
            term = t.terminated
            if term and term["exitCode"] == 0:
                continue
            init_done = False
            delays.append(await self.step(pod, c, t, policy, clock))
            break
        if init_done:
            for c in spec.get("containers") or []:
                delays.append(await self.step(pod, c, self.track(c, "app"), policy, clock))
        for c in spec.get("ephemeralContainers") or []:
            delays.append(await self.step(pod, c, self.track(c, "ephemeral"), policy, clock))
        pending = [d for d in delays if d is not None]
        return min(pending) if pending else None

    async def step(self, pod: Obj, c: Obj, t: Tracked, policy: str, clock: float) -> float | None:
        if t.running or t.finished:
            return None
        term = t.terminated
        if term is not None:
            if not should_restart(t.kind, policy, term["exitCode"]):
                t.finished = True
                return None
            first, cap = self.k.crash_backoff
            delay = 0.0 if t.crashes == 0 else min(first * 2 ** (t.crashes - 1), cap)
            t.crashes += 1
            t.last_state = {"terminated": term}
            if delay > 0:
                t.state = waiting("CrashLoopBackOff", f"back-off {_go_seconds(delay)} restarting "
                                  f"failed container={t.name} pod={format_pod(pod)}")
                t.retry_at = clock + delay
                self.k.event(pod, "BackOff", f"Back-off restarting failed container {t.name} in "
                                             f"pod {format_pod(pod)}", "Warning")
                return delay
        elif clock < t.retry_at:
            return t.retry_at - clock
        return await self.start(pod, c, t, clock)

    async def start(self, pod: Obj, c: Obj, t: Tracked, clock: float) -> float | None:
        docker, k, image = self.k.docker, self.k, c["image"]
        t.image = image
        try:
            info = await docker.request("GET", f"/images/{quote(image, safe='')}/json")
        except DockerError:
            return self.image_missing(pod, c, t, clock)
        t.image_id = f"docker://{info['Id']}"
        problem = verify_non_root(pod, c, info.get("Config", {}).get("User") or "")
        if problem:
            t.state = waiting("CreateContainerConfigError", problem)
            k.event(pod, "Failed", f"Error: {problem}", "Warning")
            t.retry_at = clock + 2.0
            return 2.0
        target = self.tracked.get(c.get("targetContainerName") or "")
        body = container_body(k.double_id, pod, c, infra_id=self.infra_id or "",
                              target_id=target.docker_id if target else None,
                              image_user=info.get("Config", {}).get("User") or "",
                              pod_ip=self.pod_ip, host_ip=k.host_ip)
        if t.docker_id:
            if t.previous_id:
                await self.remove(t.previous_id)
            t.previous_id, t.docker_id = t.docker_id, None
            t.restart_count += 1
        try:
            created = await docker.request("POST", "/containers/create", body=body,
                                           params={"name": docker_name(pod, t.name, t.attempts)})
        except DockerError as err:
            t.state = waiting("CreateContainerError", err.message)
            k.event(pod, "Failed", f"Error: {err.message}", "Warning")
            t.retry_at = clock + 2.0
            return 2.0
        t.attempts += 1
        t.docker_id = cid = created["Id"]
        k.event(pod, "Created", f"Created container {t.name}", "Normal")
        try:
            await docker.request("POST", f"/containers/{cid}/start")
        except DockerError as err:
            # runc refused (e.g. privileged in this sandbox): containerd reports StartError/128
            t.state = terminated_state(128, "1970-01-01T00:00:00Z", now(), cid, "StartError",
                                       err.message)
            k.event(pod, "Failed", f"Error: {err.message}", "Warning")
            return 0.0
        t.state = {"running": {"startedAt": now()}}
        t.started = True
        t.retry_at = clock
        k.event(pod, "Started", f"Started container {t.name}", "Normal")
        if c.get("tty"):
            # Docker's TTY is 0x0 until resized; give programs a sane size before any attach.
            with contextlib.suppress(DockerError):
                await docker.request("POST", f"/containers/{cid}/resize", params={"h": 24, "w": 80})
        task = asyncio.create_task(self.wait_exit(t, cid))
        self.waits.add(task)
        task.add_done_callback(self.waits.discard)
        return None

    def image_missing(self, pod: Obj, c: Obj, t: Tracked, clock: float) -> float:
        image = c["image"]
        if c.get("imagePullPolicy") == "Never":
            message = f'Container image "{image}" is not present with pull policy of Never'
            t.state = waiting("ErrImageNeverPull", message)
            delay = 2.0
        elif (t.state.get("waiting") or {}).get("reason") == "ErrImagePull":
            message = f'Back-off pulling image "{image}"'
            t.state = waiting("ImagePullBackOff", message)
            delay = 2 * self.k.pull_backoff
        else:
            message = pull_error(image)
            t.state = waiting("ErrImagePull", message)
            delay = self.k.pull_backoff
        kind = "BackOff" if "Back-off" in message else "Failed"
        self.k.event(pod, kind, message, "Normal" if kind == "BackOff" else "Warning")
        t.retry_at = clock + delay
        return delay

    async def wait_exit(self, t: Tracked, cid: str) -> None:
        docker = self.k.docker
        try:
            await docker.request("POST", f"/containers/{cid}/wait", timeout=None)
            info = await docker.request("GET", f"/containers/{cid}/json")
        except (DockerError, OSError):
            return
        if self.gone or t.docker_id != cid:
            return
        state = info["State"]
        started, finished = _stamp(state.get("StartedAt", "")), _stamp(state.get("FinishedAt", ""))
        reason = "OOMKilled" if state.get("OOMKilled") else None
        t.state = terminated_state(state.get("ExitCode", 0), started, finished, cid, reason)
        if t.kind == "ephemeral":
            t.finished = True
        if asyncio.get_running_loop().time() - t.retry_at > 10:
            t.crashes = 0  # it ran for a while: start the back-off over, as the kubelet does
        self.wake.set()

    def publish(self) -> None:
        pod = self.current()
        if pod is None:
            return
        spec = pod["spec"]

        def group(key: str) -> list[Tracked]:
            names = [c["name"] for c in spec.get(key) or []]
            return [self.tracked[n] for n in names if n in self.tracked]

        init, apps, eph = group("initContainers"), group("containers"), group("ephemeralContainers")
        pod_phase = phase(pod, init, apps)
        init_done = all(t.terminated and t.terminated["exitCode"] == 0 for t in init)
        status: Obj = {
            "phase": pod_phase,
            "conditions": self.conditions.all(bool(self.infra_id), init_done, apps, pod_phase),
            "hostIP": self.k.host_ip,
            "hostIPs": [{"ip": self.k.host_ip}],
            "startTime": self.start_time,
            "containerStatuses": [t.status() for t in apps],
            "qosClass": "BestEffort",
        }
        if self.pod_ip:
            status["podIP"], status["podIPs"] = self.pod_ip, [{"ip": self.pod_ip}]
        if init:
            status["initContainerStatuses"] = [t.status() for t in init]
        if eph:
            status["ephemeralContainerStatuses"] = [t.status() for t in eph]
        pod["status"] = status
        self.k.store.update("pods", pod)

    async def terminate(self, pod: Obj) -> None:
        """Graceful deletion: stop everything within the grace period, then drop the object."""
        grace = int(pod["metadata"].get("deletionGracePeriodSeconds") or 0)
        for t in self.tracked.values():
            if t.running:
                self.k.event(pod, "Killing", f"Stopping container {t.name}", "Normal")
        running = [t.docker_id for t in self.tracked.values() if t.running and t.docker_id]
        await asyncio.gather(*(
            self.k.docker.request("POST", f"/containers/{cid}/stop", params={"t": grace},
                                  timeout=grace + 30)
            for cid in running), return_exceptions=True)
        await asyncio.gather(*self.waits, return_exceptions=True)
        self.publish()
        await self.teardown()
        self.k.store.delete("pods", self.ns, self.name)

    async def remove(self, cid: str) -> None:
        with contextlib.suppress(DockerError):
            await self.k.docker.request("DELETE", f"/containers/{cid}", params={"force": True})

    async def teardown(self) -> None:
        if self.torn_down:
            return
        self.gone = self.torn_down = True
        for task in list(self.waits):
            task.cancel()
        ids = [i for t in self.tracked.values() for i in (t.docker_id, t.previous_id) if i]
        await asyncio.gather(*(self.remove(i) for i in ids), return_exceptions=True)
        if self.infra_id:
            await self.remove(self.infra_id)
        flt = {"label": [f"io.distrodebug.k8s-double.uid={self.uid}"]}
        with contextlib.suppress(DockerError):
            volumes = await self.k.docker.request("GET", "/volumes", params={"filters": flt})
            for v in volumes.get("Volumes") or []:
                await self.k.docker.request("DELETE", f"/volumes/{v['Name']}")
