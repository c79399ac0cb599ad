"""A small asyncio client for the Docker Engine API, used by the double's kubelet and streams.

Why not the docker SDK here: the double runs on one event loop, and the SDK blocks. aiohttp talks
to the engine's unix socket; attach and exec are hijacked over a raw asyncio connection, so bytes
that arrive right behind the `101 UPGRADED` headers stay in the StreamReader instead of being lost
in a buffered HTTP reader (a known trap with the SDK's attach_socket).
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode, urlparse

import aiohttp


class DockerError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _params(params: dict[str, Any] | None) -> dict[str, str]:
    out = {}
    for k, v in (params or {}).items():
        if v is None:
            continue
        out[k] = ("1" if v else "0") if isinstance(v, bool) else v if isinstance(v, str) else (
            json.dumps(v) if isinstance(v, dict | list) else str(v))
    return out


class DockerAPI:
    def __init__(self, host: str | None = None) -> None:
        host = host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        parsed = urlparse(host)
        if parsed.scheme == "unix":
            self.unix_path: str | None = parsed.path
            self.tcp: tuple[str, int] | None = None
        elif parsed.scheme == "tcp":
            self.unix_path, self.tcp = None, (parsed.hostname or "127.0.0.1", parsed.port or 2375)
        else:
            raise DockerError(0, f"the double supports unix:// and tcp:// DOCKER_HOST, not {host}")
        self.prefix = "/v1.41"
        self.session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        connector: aiohttp.BaseConnector
        if self.unix_path:
            connector = aiohttp.UnixConnector(path=self.unix_path)
            self.base = "http://docker"
        else:
            assert self.tcp
            connector = aiohttp.TCPConnector()
            self.base = f"http://{self.tcp[0]}:{self.tcp[1]}"
        self.session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        version = await self.request("GET", "/version", versioned=False)
        api = tuple(int(x) for x in version.get("ApiVersion", "1.41").split("."))
        major, minor = min(api, (1, 41))  # 1.41 = Engine 20.10, all we need
        self.prefix = f"/v{major}.{minor}"

    async def close(self) -> None:
        if self.session:
            await self.session.close()

    def _url(self, path: str, versioned: bool = True) -> str:
        return f"{self.base}{self.prefix if versioned else ''}{path}"

    async def request(self, method: str, path: str, params: dict[str, Any] | None = None,
                      body: Any = None, versioned: bool = True, timeout: float | None = 120) -> Any:
        assert self.session
        async with self.session.request(
            method, self._url(path, versioned), params=_params(params),
            json=body, timeout=aiohttp.ClientTimeout(total=timeout),
        ) as resp:
            data = await resp.read()
            if resp.status >= 400:
                try:
                    message = json.loads(data).get("message", "")
                except ValueError:
                    message = data.decode(errors="replace")
                raise DockerError(resp.status, message)
            if data and resp.content_type == "application/json":
                return json.loads(data)
            return data

    async def stream(self, path: str, params: dict[str, Any] | None = None) -> AsyncIterator[bytes]:
        """A long GET (events, logs with follow) as raw chunks."""
        assert self.session
        async with self.session.get(self._url(path), params=_params(params)) as resp:
            if resp.status >= 400:
                raise DockerError(resp.status, (await resp.read()).decode(errors="replace"))
            async for chunk in resp.content.iter_any():
                yield chunk

    async def events(self, filters: dict[str, list[str]]) -> AsyncIterator[dict[str, Any]]:
        assert self.session
        params = _params({"filters": filters})
        async with self.session.get(self._url("/events"), params=params) as resp:
            async for line in resp.content:
                if line.strip():
                    yield json.loads(line)

    async def hijack(self, path: str, params: dict[str, Any] | None = None,
                     body: Any = None) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """POST with `Upgrade: tcp` and return the raw bidirectional stream."""
        if self.unix_path:
            reader, writer = await asyncio.open_unix_connection(self.unix_path, limit=1 << 20)
        else:
            assert self.tcp
            reader, writer = await asyncio.open_connection(*self.tcp, limit=1 << 20)
        payload = json.dumps(body).encode() if body is not None else b""
        query = f"?{urlencode(_params(params))}" if params else ""
        head = (
            f"POST {self.prefix}{path}{query} HTTP/1.1\r\nHost: docker\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
            "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
        )
        writer.write(head.encode() + payload)
        await writer.drain()
        header = await reader.readuntil(b"\r\n\r\n")
        status = int(header.split(b" ", 2)[1])
        if status >= 400:
            length = 0
            for line in header.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            data = await reader.readexactly(length) if length else b""
            writer.close()
            try:
                message = json.loads(data).get("message", "")
            except ValueError:
                message = data.decode(errors="replace")
            raise DockerError(status, message)
        return reader, writer


class Demux:
    """Split Docker's multiplexed stream (8-byte header: stream, 0, 0, 0, big-endian size)."""

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self.buf += data
        out = []
        while len(self.buf) >= 8:
            stream, size = self.buf[0], struct.unpack(">I", self.buf[4:8])[0]
            if len(self.buf) < 8 + size:
                break
            out.append((stream, self.buf[8 : 8 + size]))
            self.buf = self.buf[8 + size :]
        return out
