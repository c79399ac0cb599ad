"""A small API-server double for the faults the real cluster here cannot produce.

Everything else runs against the real cluster (tests/kubernetes). This serves one running pod,
`GET`/`PATCH` (its ephemeral containers), a watch that says the debugger runs, and exec over
WebSocket, with one fault switched on at a time:

- ``ephemeral=False``: no pods/ephemeralcontainers subresource (404 with an empty details.name,
  as servers before 1.22, or with the feature off, answer);
- ``protocols=("v4.channel.k8s.io",)``: a streaming server without v5 (before 1.30, or a proxy
  that keeps v4), which cannot be told that stdin ended;
- ``drop_after=N``: the connection breaks after N stdout frames, with no status on channel 3;
- ``failure=TEXT``: the command never ran; a Failure status with that message on channel 3 (the
  real kubelet does this for OCI runtime errors, which cannot be caused on demand here).

Exec runs no process: it answers ``sh -c`` commands that only echo (enough to see which stream
a byte arrived on) and exits with the status the test asks for. Plain HTTP on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

V4, V5 = "v4.channel.k8s.io", "v5.channel.k8s.io"


class SmallDouble:
    def __init__(self, *, ephemeral: bool = True, protocols: Sequence[str] = (V5, V4),
                 drop_after: int | None = None, exit_code: int = 0,
                 failure: str | None = None) -> None:
        self.ephemeral, self.protocols = ephemeral, tuple(protocols)
        self.drop_after, self.exit_code, self.failure = drop_after, exit_code, failure
        self.requests: list[tuple[str, str]] = []
        self.stdin_seen = b""
        self.pod: dict[str, Any] = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "api", "namespace": "default", "resourceVersion": "1", "uid": "u1"},
            "spec": {"containers": [{"name": "app", "image": "app:1"}]},
            "status": {"phase": "Running", "containerStatuses": [{
                "name": "app", "restartCount": 0, "containerID": "containerd://" + "a" * 64,
                "image": "app:1", "imageID": "sha256:" + "b" * 64, "ready": True,
                "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]},
        }
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> SmallDouble:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def kubeconfig(self, folder: Path) -> str:
        path = folder / "kubeconfig"
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "double",
            "clusters": [{"name": "double", "cluster": {"server": f"http://127.0.0.1:{self.port}"}}],
            "users": [{"name": "double", "user": {"token": "t"}}],
            "contexts": [{"name": "double", "context": {"cluster": "double", "user": "double"}}]}))
        return str(path)

    async def _serve(self) -> None:
        app = web.Application()
        base = "/api/v1/namespaces/{ns}/pods"
        app.router.add_get("/version", self._version)
        app.router.add_get(base + "/{name}", self._get)
        app.router.add_get(base, self._list_or_watch)
        app.router.add_patch(base + "/{name}/ephemeralcontainers", self._patch)
        app.router.add_get(base + "/{name}/exec", self._exec)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    # -- REST ----------------------------------------------------------------------------------
    async def _version(self, request: web.Request) -> web.Response:
        return web.json_response({"major": "1", "minor": "29", "gitVersion": "v1.29.9"})

    async def _get(self, request: web.Request) -> web.Response:
        self.requests.append(("GET", request.path))
        if request.match_info["name"] != "api":
            return _status(404, "NotFound", f'pods "{request.match_info["name"]}" not found',
                           {"name": request.match_info["name"], "kind": "pods"})
        return web.json_response(self.pod)

    async def _list_or_watch(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(("WATCH" if request.query.get("watch") else "LIST", request.path))
        if not request.query.get("watch"):
            return web.json_response({"kind": "PodList", "items": [self.pod]})
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(json.dumps({"type": "MODIFIED", "object": self.pod}).encode() + b"\n")
        await response.write_eof()
        return response

    async def _patch(self, request: web.Request) -> web.Response:
        self.requests.append(("PATCH", request.path))
        if not self.ephemeral:
            return _status(404, "NotFound", "the server could not find the requested resource", {})
        body = await request.json()
        added = body["spec"]["ephemeralContainers"]
        self.pod["spec"].setdefault("ephemeralContainers", []).extend(added)
        self.pod["status"].setdefault("ephemeralContainerStatuses", []).extend(
            {"name": c["name"], "image": c["image"], "imageID": "sha256:" + "c" * 64,
             "ready": False, "restartCount": 0,
             "state": {"running": {"startedAt": "2026-01-01T00:00:01Z"}}}
            for c in added)
        self.pod["metadata"]["resourceVersion"] = str(int(self.pod["metadata"]["resourceVersion"]) + 1)
        return web.json_response(self.pod)

    # -- exec ----------------------------------------------------------------------------------
    async def _exec(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(("EXEC", request.path))
        ws = web.WebSocketResponse(protocols=self.protocols)
        await ws.prepare(request)
        stdout = b"hello from the double\n"
        frames = [stdout[i:i + 6] for i in range(0, len(stdout), 6)]
        for index, chunk in enumerate(frames):
            if self.drop_after is not None and index >= self.drop_after:
                # The connection breaks: no close frame, no status.
                request.transport.close()  # type: ignore[union-attr]
                return ws
            await ws.send_bytes(b"\x01" + chunk)
        if request.query.get("stdin") == "true":
            async for message in ws:
                if message.type != WSMsgType.BINARY:
                    break
                if message.data[:1] == b"\x00":
                    self.stdin_seen += message.data[1:]
                if message.data[:2] == b"\xff\x00":
                    break  # v5 CLOSE of stdin
        status: dict[str, Any] = {"metadata": {}, "status": "Success"}
        if self.failure:
            # What the kubelet sends when the runtime cannot run the command at all (since 1.30
            # the upgrade succeeded first, so this is the only word of it).
            status = {"metadata": {}, "status": "Failure", "reason": "InternalError", "code": 500,
                      "message": self.failure}
        elif self.exit_code:
            status = {"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
                      "message": f"command terminated with non-zero exit code: {self.exit_code}",
                      "details": {"causes": [{"reason": "ExitCode", "message": str(self.exit_code)}]}}
        await ws.send_bytes(b"\x03" + json.dumps(status).encode())
        await ws.close()
        return ws


def _status(code: int, reason: str, message: str, details: dict[str, Any]) -> web.Response:
    return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                              "message": message, "reason": reason, "details": details,
                              "code": code}, status=code)
