"""attach and exec over WebSocket (channel.k8s.io v1-v5), bridged to Docker's hijacked streams.

Framing: every message is [channel byte] + payload; 0 stdin, 1 stdout, 2 stderr, 3 error/status,
4 resize (`{"Width":W,"Height":H}`), 255 close (v5: `[255, 0]` half-closes stdin). From v4 on the
status channel carries a JSON `metav1.Status` (exec: Success or NonZeroExitCode with the exit
code as a cause; attach: Success). SPDY is refused with a 400; kubectl >= 1.30 only falls back to
SPDY when the WebSocket upgrade itself fails, which it never does here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from .dockerapi import Demux, DockerError
from .status import ApiError, bad_request

if TYPE_CHECKING:
    from .http import Ctx

Obj = dict[str, Any]
ALL_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io",
                 "v2.channel.k8s.io", "channel.k8s.io")
# Docker swallows its detach sequence (default ctrl-p,ctrl-q: readline's "previous line");
# pick one nobody types.
DETACH_KEYS = "ctrl-^,ctrl-@,ctrl-^,ctrl-@"
SUCCESS = {"metadata": {}, "status": "Success"}
OCI_FAILURE = b"OCI runtime exec failed"


def _flag(ctx: Ctx, name: str) -> bool:
    return (ctx.query(name) or "").lower() in ("true", "1")


def exit_status(code: int, command: list[str]) -> Obj:
    return {
        "metadata": {}, "status": "Failure",
        "message": f"command terminated with non-zero exit code: command '{command}' exited "
                   f"with {code}: ",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def internal_status(message: str) -> Obj:
    return {"metadata": {}, "status": "Failure", "message": f"Internal error occurred: {message}",
            "reason": "InternalError", "details": {"causes": [{"message": message}]},
            "code": 500}


def _negotiate(ctx: Ctx) -> None:
    offered = [p.strip() for p in ctx.request.headers.get("Sec-WebSocket-Protocol", "").split(",")
               if p.strip()]
    supported = ctx.double.stream_protocols
    if offered and not any(p in supported for p in offered):
        # wsstream's handshake error: plain text, 400, so kubectl falls back to SPDY
        raise web.HTTPBadRequest(text=f"requested protocol(s) are not supported: {offered}; "
                                      f"supports {list(supported)}")


async def serve(ctx: Ctx, pod: Obj, kind: str) -> web.StreamResponse:
    from .pods import pick_container

    request, double = ctx.request, ctx.double
    phase = (pod.get("status") or {}).get("phase")
    if phase in ("Succeeded", "Failed"):
        raise bad_request(f"cannot {kind} into a container in a completed pod; current phase is "
                          f"{phase}")
    container = pick_container(pod, ctx.query("container"))
    stdin, stdout, stderr, tty = (_flag(ctx, n) for n in ("stdin", "stdout", "stderr", "tty"))
    command = request.query.getall("command", [])
    if kind == "exec" and not command:
        raise bad_request("you must specify at least one command for the container")
    if not (stdin or stdout or stderr):
        raise bad_request("you must specify at least 1 of stdin, stdout, stderr")
    tracked = double.kubelet.tracked(pod["metadata"]["namespace"], pod["metadata"]["name"],
                                     container) if double.kubelet else None
    if tracked is None or not tracked.running or not tracked.docker_id:
        raise bad_request(f'container not found ("{container}")')
    # Validation first: kubectl retries a refused WebSocket as SPDY and prints that answer.
    upgrade = request.headers.get("Upgrade", "").lower()
    if upgrade.startswith("spdy"):
        raise bad_request("the API-server double does not speak SPDY: use a WebSocket with "
                          "v5.channel.k8s.io or v4.channel.k8s.io")
    if upgrade != "websocket":
        raise bad_request("Upgrade request required")
    _negotiate(ctx)
    cid = tracked.docker_id
    docker = double.docker
    ws = web.WebSocketResponse(protocols=double.stream_protocols, max_msg_size=0,
                               compress=False, autoping=True)
    exec_id = ""
    try:
        if kind == "exec":
            created = await docker.request("POST", f"/containers/{cid}/exec", body={
                "AttachStdin": stdin, "AttachStdout": stdout, "AttachStderr": stderr,
                "Tty": tty, "Cmd": command, "DetachKeys": DETACH_KEYS})
            exec_id = created["Id"]
            reader, writer = await docker.hijack(f"/exec/{exec_id}/start",
                                                 body={"Detach": False, "Tty": tty})
        else:
            reader, writer = await docker.hijack(f"/containers/{cid}/attach", params={
                "stream": True, "stdin": stdin, "stdout": stdout, "stderr": stderr,
                "detachKeys": DETACH_KEYS})
    except DockerError as err:
        raise ApiError(500, "InternalError", f"Internal error occurred: {err.message}") from err
    await ws.prepare(request)
    protocol = ws.ws_protocol or "channel.k8s.io"
    bridge = Bridge(ws, reader, writer, tty, protocol, docker, cid, exec_id)
    try:
        status = await bridge.run(command)
        if status is not None and protocol in ("v4.channel.k8s.io", "v5.channel.k8s.io"):
            await ws.send_bytes(b"\x03" + json.dumps(status, separators=(",", ":")).encode())
        elif status is not None and status.get("status") == "Failure":
            await ws.send_bytes(b"\x03" + status["message"].encode())
    except (ConnectionResetError, RuntimeError):
        pass
    finally:
        writer.close()
        await ws.close()
    return ws


class Bridge:
    def __init__(self, ws: web.WebSocketResponse, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, tty: bool, protocol: str, docker: Any, cid: str,
                 exec_id: str) -> None:
        self.ws, self.reader, self.writer, self.tty = ws, reader, writer, tty
        self.protocol, self.docker, self.cid, self.exec_id = protocol, docker, cid, exec_id
        self.held = b""  # a possible "OCI runtime exec failed" message, not yet forwarded

    async def pump_out(self) -> None:
        demux = None if self.tty else Demux()
        first = True
        while data := await self.reader.read(65536):
            frames = [(1, data)] if demux is None else demux.feed(data)
            for stream, payload in frames:
                if first and self.exec_id and payload.startswith(OCI_FAILURE):
                    self.held = payload
                    continue
                first = False
                if payload:
                    await self.ws.send_bytes(bytes([2 if stream == 2 else 1]) + payload)

    async def pump_in(self) -> None:
        async for msg in self.ws:
            if msg.type == WSMsgType.BINARY:
                data: bytes = msg.data
            elif msg.type == WSMsgType.TEXT:
                data = bytes([ord(msg.data[0])]) + msg.data[1:].encode() if msg.data else b""
            else:
                break
            if not data:
                continue
            channel, payload = data[0], data[1:]
            if channel == 0:
                self.writer.write(payload)
                await self.writer.drain()
            elif channel == 4 and self.tty and self.protocol != "channel.k8s.io":
                await self.resize(payload)
            elif channel == 255 and self.protocol == "v5.channel.k8s.io" and payload[:1] == b"\x00":
                with contextlib.suppress(OSError):
                    self.writer.write_eof()  # stdin EOF for the process (Docker CloseWrite)

    async def resize(self, payload: bytes) -> None:
        try:
            size = {k.lower(): v for k, v in json.loads(payload).items()}
            params = {"h": int(size["height"]), "w": int(size["width"])}
        except (ValueError, KeyError, AttributeError):
            return
        path = f"/exec/{self.exec_id}/resize" if self.exec_id else f"/containers/{self.cid}/resize"
        with contextlib.suppress(DockerError):
            await self.docker.request("POST", path, params=params)

    async def run(self, command: list[str]) -> Obj | None:
        """Pump both ways; the status to send, or None when the client left first."""
        out = asyncio.create_task(self.pump_out())
        inp = asyncio.create_task(self.pump_in())
        done, _ = await asyncio.wait({out, inp}, return_when=asyncio.FIRST_COMPLETED)
        if out not in done:
            out.cancel()
            await asyncio.gather(out, return_exceptions=True)
            return None
        inp.cancel()
        await asyncio.gather(inp, return_exceptions=True)
        with contextlib.suppress(Exception):
            out.result()
        if not self.exec_id:
            return SUCCESS
        return await self.exec_result(command)

    async def exec_result(self, command: list[str]) -> Obj:
        info: Obj = {}
        for _ in range(100):  # the exit code lands a moment after the stream ends
            try:
                info = await self.docker.request("GET", f"/exec/{self.exec_id}/json")
            except DockerError as err:
                return internal_status(err.message)
            if not info.get("Running"):
                break
            await asyncio.sleep(0.02)
        code = info.get("ExitCode") or 0
        if self.held and not info.get("Pid"):
            text = self.held.decode(errors="replace").strip()
            return internal_status(f"error executing command in container: failed to exec in "
                                   f'container: failed to start exec "{self.exec_id}": {text}')
        if self.held:
            await self.ws.send_bytes(b"\x01" + self.held)
        return SUCCESS if code == 0 else exit_status(code, command)
