"""EngineClient: the Docker Engine API calls distrodebug makes, named and shaped as docker-py's
``APIClient``'s so that the runtime's call sites read as they did with the SDK.

Each method is one call: its path, its parameters, and what the answer becomes, including where
Podman answers differently (events' filters, commit's labels and IDs). How the request travels
is :class:`~distrodebug.runtimes.docker.engine.transport.Transport`'s, which this extends.
:func:`registry_auth` is here beside ``pull``, its only user.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import socket
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from distrodebug.runtimes.docker.engine.bodies import container_config, host_config
from distrodebug.runtimes.docker.engine.endpoint import config_dir
from distrodebug.runtimes.docker.engine.transport import Streamed, Transport
from distrodebug.runtimes.docker.engine.wire import (
    decode_path_stat,
    demultiplexed,
    json_objects,
    quote_part,
    raise_progress_error,
)


class EngineClient(Transport):
    """The engine API calls distrodebug makes, named and shaped as docker-py's APIClient's."""

    # -- system -----------------------------------------------------------------------------
    def version(self, api_version: bool = True) -> dict[str, Any]:
        return dict(self._json("GET", "/version", versioned=api_version))

    def info(self) -> dict[str, Any]:
        return dict(self._json("GET", "/info"))

    def ping(self) -> bool:
        return self._request("GET", "/_ping", versioned=False)[2].strip() == b"OK"

    # -- containers -------------------------------------------------------------------------
    def containers(self, all: bool = False, filters: Mapping[str, Any] | None = None) -> list[Any]:
        return list(self._json("GET", "/containers/json",
                               params={"all": all or None, "filters": dict(filters or {}) or None}))

    def inspect_container(self, container: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/containers/{quote_part(container)}/json"))

    def create_host_config(self, **options: Any) -> dict[str, Any]:
        return host_config(**options)

    def create_container(self, image: str, *, name: str | None = None, **options: Any) -> dict[str, Any]:
        """POST /containers/create; the answer holds the new container's ``Id``."""
        return dict(self._json("POST", "/containers/create", params={"name": name},
                               json_body=container_config(image, **options)))

    def start(self, container: str) -> None:
        self._request("POST", f"/containers/{quote_part(container)}/start")

    def stop(self, container: str, timeout: int = 10) -> None:
        self._request("POST", f"/containers/{quote_part(container)}/stop", params={"t": timeout},
                      timeout=self.timeout + timeout)

    def wait(self, container: str, timeout: float | None = None) -> dict[str, Any]:
        """The exit status once the container stopped; EngineUnreachable(timeout=True) after
        ``timeout`` seconds without an answer."""
        return dict(self._json("POST", f"/containers/{quote_part(container)}/wait", timeout=timeout))

    def remove_container(self, container: str, v: bool = False, force: bool = False) -> None:
        self._request("DELETE", f"/containers/{quote_part(container)}", params={"v": v, "force": force})

    def resize(self, container: str, height: int, width: int) -> None:
        self._request("POST", f"/containers/{quote_part(container)}/resize", params={"h": height, "w": width})

    def diff(self, container: str) -> list[Any] | None:
        found = self._json("GET", f"/containers/{quote_part(container)}/changes")
        return list(found) if found else None

    def logs(self, container: str, tail: int | str = "all", timestamps: bool = False) -> bytes:
        """stdout and stderr as the engine kept them; without a TTY, its frame headers removed."""
        return b"".join(self.logs_stream(container, tail=tail, timestamps=timestamps))

    def logs_stream(self, container: str, tail: int | str = "all",
                    timestamps: bool = False) -> Iterator[bytes]:
        """The logs in pieces, frame headers removed without a TTY: a log of any size passes
        through in bounded memory (the caller keeps what it wants of it)."""
        tty = bool((self.inspect_container(container).get("Config") or {}).get("Tty"))
        answer = self._stream("GET", f"/containers/{quote_part(container)}/logs", params={
            "stdout": True, "stderr": True, "timestamps": timestamps, "tail": tail})
        with contextlib.closing(answer):
            yield from answer.chunks() if tty else demultiplexed(answer.chunks())

    def events(self, since: int | str, until: int | str,
               filters: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """The engine's events between two times (seconds since the epoch), one dict each; with
        ``until`` in the past or now, the engine ends the answer itself."""
        # Filters in the engine's own form, {"container": {"ID": true}}: Docker reads it and the
        # list form alike, Podman 4.3's compat events read only this one (a list matched nothing,
        # so a dump on Podman had no engine events at all).
        wanted = {key: {str(v): True for v in (value if isinstance(value, list | tuple) else [value])}
                  for key, value in (filters or {}).items()}
        answer = self._stream("GET", "/events", params={"since": since, "until": until,
                                                         "filters": json.dumps(wanted)})
        with contextlib.closing(answer):
            pending = b""
            for chunk in answer.chunks():
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    if line.strip():
                        yield dict(json.loads(line))
            if pending.strip():
                yield dict(json.loads(pending))

    def commit(self, container: str, repository: str, tag: str, conf: Mapping[str, Any],
               pause: bool = True) -> dict[str, Any]:
        # Labels go as LABEL changes too: Podman 4.3's compat commit ignores the body's Labels
        # (so cleanup could not find a snapshot by its labels); Docker applies both alike.
        changes = [f"LABEL {json.dumps(str(k))}={json.dumps(str(v))}"
                   for k, v in (conf.get("Labels") or {}).items()]
        made = dict(self._json("POST", "/commit", json_body=dict(conf), params={
            "container": container, "repo": repository, "tag": tag, "pause": pause,
            "changes": changes or None}))
        # Podman answers a bare 64-hex ID, which its DELETE then reads as a name: Docker's form.
        ident = str(made.get("Id", ""))
        if len(ident) == 64 and ":" not in ident:
            made["Id"] = f"sha256:{ident}"
        return made

    def attach_socket(self, container: str, params: Mapping[str, Any]) -> socket.socket:
        """The hijacked attach stream (stream.DockerStream reads and writes it)."""
        return self._hijack(f"/containers/{quote_part(container)}/attach", params=params)

    def exec_create(self, container: str, cmd: list[str], stdin: bool = False, stdout: bool = True,
                    stderr: bool = True, tty: bool = False,
                    environment: Mapping[str, str] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"AttachStdin": stdin, "AttachStdout": stdout,
                                "AttachStderr": stderr, "Tty": tty, "Cmd": cmd}
        if environment:
            body["Env"] = [f"{name}={value}" for name, value in environment.items()]
        return dict(self._json("POST", f"/containers/{quote_part(container)}/exec", json_body=body))

    def exec_start(self, exec_id: str, tty: bool = False) -> socket.socket:
        """Start an exec and hand back its hijacked stream."""
        return self._hijack(f"/exec/{quote_part(exec_id)}/start", json_body={"Detach": False, "Tty": tty})

    def exec_start_detached(self, exec_id: str) -> None:
        """Start an exec nobody reads: the engine answers once it runs."""
        self._request("POST", f"/exec/{quote_part(exec_id)}/start", json_body={"Detach": True, "Tty": False})

    def exec_inspect(self, exec_id: str) -> dict[str, Any]:
        """Running, ExitCode, Pid... of an exec."""
        return dict(self._json("GET", f"/exec/{quote_part(exec_id)}/json"))

    # -- archives -----------------------------------------------------------------------------
    def put_archive(self, container: str, path: str, data: bytes | BinaryIO) -> None:
        """Unpack a tar (bytes, or a file streamed in chunks) into ``path`` of the container."""
        self._request("PUT", f"/containers/{quote_part(container)}/archive", params={"path": path},
                      body=data, headers={"Content-Type": "application/x-tar"})

    def get_archive(self, container: str, path: str) -> tuple[Streamed, dict[str, Any]]:
        """``path`` as a tar stream (close it when done) and its stat."""
        stream = self._stream("GET", f"/containers/{quote_part(container)}/archive", params={"path": path})
        return stream, decode_path_stat(stream.headers.get("X-Docker-Container-Path-Stat"))

    def archive_stat(self, container: str, path: str) -> dict[str, Any]:
        """The stat of ``path`` in the container (HEAD of the archive API); NotFound if none."""
        _, headers, _ = self._request("HEAD", f"/containers/{quote_part(container)}/archive",
                                      params={"path": path})
        return decode_path_stat(headers.get("X-Docker-Container-Path-Stat"))

    # -- images ---------------------------------------------------------------------------------
    def images(self, filters: Mapping[str, Any] | None = None) -> list[Any]:
        return list(self._json("GET", "/images/json",
                               params={"filters": dict(filters or {}) or None}))

    def inspect_image(self, image: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/images/{quote_part(image)}/json"))

    def pull(self, repository: str, tag: str | None = None) -> Iterator[Any]:
        """Pull, yielding the progress objects; APIError for an error the stream reports."""
        stream = self._stream("POST", "/images/create", params={"fromImage": repository, "tag": tag},
                              headers={"X-Registry-Auth": registry_auth(repository)})
        with contextlib.closing(stream):
            for item in json_objects(io.BufferedReader(stream)):
                raise_progress_error(item)
                yield item

    def import_image_from_file(self, filename: str, repository: str,
                               changes: list[str] | None = None) -> None:
        """Import a root filesystem tar as an image (``docker import``)."""
        with open(filename, "rb") as source:
            stream = self._stream("POST", "/images/create", body=source, params={
                "fromSrc": "-", "repo": repository, "changes": changes or None},
                headers={"Content-Type": "application/tar"})
            with contextlib.closing(stream):
                for item in json_objects(io.BufferedReader(stream)):
                    raise_progress_error(item)

    def export_image(self, image: str) -> Streamed:
        """The image as ``docker save`` writes it (a tar stream; close it when done)."""
        return self._stream("GET", f"/images/{quote_part(image)}/get")

    def tag(self, image: str, repository: str, tag: str | None = None, force: bool = False) -> None:
        self._request("POST", f"/images/{quote_part(image)}/tag",
                      params={"repo": repository, "tag": tag, "force": force or None})

    def remove_image(self, image: str, force: bool = False, noprune: bool = False) -> None:
        self._request("DELETE", f"/images/{quote_part(image)}", params={"force": force, "noprune": noprune})

    # -- volumes ------------------------------------------------------------------------------
    def create_volume(self, name: str, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
        return dict(self._json("POST", "/volumes/create",
                               json_body={"Name": name, "Labels": dict(labels or {})}))

    def volumes(self, filters: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return dict(self._json("GET", "/volumes", params={"filters": dict(filters or {}) or None})
                    or {})

    def remove_volume(self, name: str, force: bool = False) -> None:
        self._request("DELETE", f"/volumes/{quote_part(name)}", params={"force": force})


def registry_auth(repository: str, environ: Mapping[str, str] | None = None,
                  home: Path | None = None) -> str:
    """The X-Registry-Auth header for a pull: the credentials config.json stores inline for the
    repository's registry (``auths``), else an empty object (anonymous)."""
    environ = os.environ if environ is None else environ
    first = repository.split("/", 1)[0]
    registry = first if "/" in repository and ("." in first or ":" in first or first == "localhost") \
        else "https://index.docker.io/v1/"
    entry: dict[str, str] = {}
    with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
        config = json.loads((config_dir(environ, home or Path.home()) / "config.json").read_text())
        auths = config.get("auths") or {}
        for key in (registry, f"https://{registry}", f"http://{registry}"):
            stored = auths.get(key)
            if stored and stored.get("auth"):
                user, _, password = base64.b64decode(stored["auth"]).decode().partition(":")
                entry = {"username": user, "password": password, "serveraddress": registry}
                break
    return base64.urlsafe_b64encode(json.dumps(entry).encode()).decode()
