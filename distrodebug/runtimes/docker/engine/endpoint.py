"""Where the engine listens, decided as the docker CLI decides it: ``DOCKER_HOST`` (with
``DOCKER_TLS_VERIFY`` and ``DOCKER_CERT_PATH``), else the current docker context, else the
default socket.

Pure functions of an environment and a home directory, so tests give both; nothing here opens
a connection (transport.py does, from the :class:`Endpoint` found here).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_HOST = "unix:///var/run/docker.sock"


@dataclasses.dataclass(frozen=True)
class TLSSettings:
    """Client TLS as the docker CLI takes it: a CA to verify against, a client certificate."""

    verify: bool
    ca: str | None = None
    cert: str | None = None
    key: str | None = None


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """Where the engine listens: ``unix`` (a socket path), ``tcp`` (host, port, maybe TLS) or
    ``ssh`` (kept only to be refused with a clear message)."""

    url: str
    scheme: str
    path: str = ""
    host: str = ""
    port: int = 0
    tls: TLSSettings | None = None


def _cert_files(directory: str | os.PathLike[str], verify: bool) -> TLSSettings:
    """ca.pem, cert.pem and key.pem of a directory, the ones that exist."""
    base = Path(directory)

    def present(name: str) -> str | None:
        path = base / name
        return str(path) if path.is_file() else None

    cert, key = present("cert.pem"), present("key.pem")
    if cert is None or key is None:
        cert = key = None
    return TLSSettings(verify=verify, ca=present("ca.pem"), cert=cert, key=key)


def parse_host(url: str, tls: TLSSettings | None = None) -> Endpoint:
    """A DOCKER_HOST value as an Endpoint; ValueError for what the docker CLI would not take."""
    if url.startswith("/"):
        url = f"unix://{url}"
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("unix", "npipe"):
        if scheme == "npipe":
            raise ValueError(f"named pipes ({url}) exist only on Windows")
        return Endpoint(url, "unix", path=parts.netloc + parts.path or "/var/run/docker.sock")
    if scheme in ("tcp", "http", "https"):
        if not parts.hostname:
            raise ValueError(f"no host in {url!r}")
        if scheme == "https" and tls is None:
            tls = TLSSettings(verify=True)
        if scheme == "http":
            tls = None
        port = parts.port or (2376 if tls is not None else 2375)
        return Endpoint(url, "tcp", host=parts.hostname, port=port, tls=tls)
    if scheme == "ssh":
        return Endpoint(url, "ssh", host=parts.hostname or "", port=parts.port or 22)
    raise ValueError(f"unknown scheme in {url!r} (unix://, tcp:// or ssh:// are understood)")


def config_dir(environ: Mapping[str, str], home: Path) -> Path:
    """The docker CLI's configuration directory: $DOCKER_CONFIG, else ~/.docker."""
    return Path(environ["DOCKER_CONFIG"]) if environ.get("DOCKER_CONFIG") else home / ".docker"


def current_context(environ: Mapping[str, str], home: Path) -> str:
    """The context the docker CLI would use: $DOCKER_CONTEXT, else config.json's currentContext."""
    if environ.get("DOCKER_CONTEXT"):
        return environ["DOCKER_CONTEXT"]
    try:
        config = json.loads((config_dir(environ, home) / "config.json").read_text())
    except (OSError, ValueError):
        return "default"
    name = config.get("currentContext") if isinstance(config, dict) else None
    return str(name) if name else "default"


def context_endpoint(name: str, environ: Mapping[str, str], home: Path) -> Endpoint | None:
    """The docker endpoint of a named context (its meta.json and TLS files); None for none."""
    if name == "default":
        return None
    import hashlib  # here: most runs have no context, and it loads OpenSSL's hashes

    digest = hashlib.sha256(name.encode()).hexdigest()
    base = config_dir(environ, home) / "contexts"
    try:
        meta = json.loads((base / "meta" / digest / "meta.json").read_text())
        endpoint = meta["Endpoints"]["docker"]
        host = str(endpoint["Host"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    skip_verify = bool(endpoint.get("SkipTLSVerify"))
    tls_dir = base / "tls" / digest / "docker"
    tls = None
    if tls_dir.is_dir():
        tls = _cert_files(tls_dir, verify=not skip_verify)
    elif skip_verify:
        tls = TLSSettings(verify=False)
    return parse_host(host, tls)


def endpoint_from_env(environ: Mapping[str, str] | None = None, home: Path | None = None) -> Endpoint:
    """DOCKER_HOST if set (TLS from DOCKER_TLS_VERIFY, DOCKER_CERT_PATH), else the current docker
    context, else the default socket. ValueError for a DOCKER_HOST that cannot be used."""
    environ = os.environ if environ is None else environ
    home = Path.home() if home is None else home
    host = environ.get("DOCKER_HOST")
    if host:
        verify = bool(environ.get("DOCKER_TLS_VERIFY"))
        tls = None
        if verify or environ.get("DOCKER_CERT_PATH"):
            tls = _cert_files(environ.get("DOCKER_CERT_PATH") or home / ".docker", verify)
        return parse_host(host, tls)
    try:
        found = context_endpoint(current_context(environ, home), environ, home)
    except ValueError:
        found = None  # a broken CLI config must not stop us; fall back as the CLI does
    return found or parse_host(DEFAULT_HOST)
