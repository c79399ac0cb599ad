"""The engine client's exceptions, and which one an error answer means.

runtimes/docker/translate.py turns these into distrodebug's own errors; they are kept apart
from the transport so that the pure parts (wire.py) can raise them without importing it.
"""

from __future__ import annotations

import contextlib
import json


class EngineError(Exception):
    """Anything the engine client raises."""


class APIError(EngineError):
    """The engine answered with an error status."""

    def __init__(self, status_code: int, explanation: str) -> None:
        super().__init__(f"{status_code}: {explanation}")
        self.status_code = status_code
        self.explanation = explanation


class NotFound(APIError):
    """404: no such container, image, volume or path."""


class EngineUnreachable(EngineError):
    """No answer: the connection failed, broke off or timed out."""

    def __init__(self, reason: str, *, permission: bool = False, timeout: bool = False,
                 tls: bool = False) -> None:
        super().__init__(reason)
        #: The socket refused us (not in the docker group).
        self.permission = permission
        #: The engine was reached but did not answer in time.
        self.timeout = timeout
        #: The TLS handshake failed (a certificate not trusted, or ours refused).
        self.tls = tls


def explanation_of(status: int, reason: str, body: bytes) -> str:
    """The engine's error message: its JSON ``message``, else the body, else the status reason."""
    text = body.decode("utf-8", "replace").strip()
    with contextlib.suppress(ValueError):
        data = json.loads(text)
        if isinstance(data, dict) and data.get("message"):
            return str(data["message"])
    return text or reason or f"HTTP {status}"


def api_error(status: int, explanation: str) -> APIError:
    """The error for an answer's status, with Docker's status where Podman says the same thing
    with 500: a name already in use or a running container removed without force (Docker: 409),
    a container removed a moment ago ("does not exist in database: no such container"; Docker:
    404). Callers then handle one engine's words."""
    if status == 500:
        lowered = explanation.lower()
        if "already in use" in lowered or "container state improper" in lowered:
            status = 409
        elif "no such container" in lowered:
            status = 404
    return NotFound(status, explanation) if status == 404 else APIError(status, explanation)
