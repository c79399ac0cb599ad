"""Engine client exceptions as our errors: every call to the engine runs inside ``translate``.

One place decides what a refusal, a missing object, a socket we may not open or a failed TLS
handshake means to the user and what to run next; the rest of the runtime only names what it
was doing when the call failed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from distrodebug.errors import (
    AmbiguousTarget,
    DistrodebugError,
    EngineUnreachable,
    NoSuchTarget,
    PermissionDenied,
    SidecarFailed,
)
from distrodebug.runtimes.docker.engine.errors import APIError, NotFound
from distrodebug.runtimes.docker.engine.errors import EngineUnreachable as NoAnswer


@contextlib.contextmanager
def translate(endpoint: str, what: str = "") -> Iterator[None]:
    """Turn the engine client's exceptions into our errors, each with the next step to take."""
    try:
        yield
    except DistrodebugError:
        raise
    except NotFound as exc:
        raise NoSuchTarget(f"{what or 'The object'} was not found on {endpoint}: {explain(exc)}.",
                           "Run 'docker ps -a' to see the containers there.") from None
    except APIError as exc:
        text = explain(exc)
        if "multiple ids found" in text.lower():
            raise AmbiguousTarget(f"{what} is ambiguous: {text}.", "Type more of the ID.") from None
        raise SidecarFailed(f"The Docker engine refused {what or 'a request'}: {text}.",
                            "Check the engine's log ('journalctl -u docker') if this persists.") from None
    except (NoAnswer, OSError) as exc:
        text = str(exc)
        if "Permission denied" in text or isinstance(exc, PermissionError) or (
                isinstance(exc, NoAnswer) and exc.permission):
            raise PermissionDenied(
                f"Permission denied on the Docker socket at {endpoint}.",
                "Run as a member of the 'docker' group (sudo usermod -aG docker $USER, then log in "
                "again) or with sudo.",
            ) from None
        if isinstance(exc, NoAnswer) and exc.tls:
            raise EngineUnreachable(
                f"The TLS handshake with the Docker engine at {endpoint} failed: {text}.",
                "Check the certificates in DOCKER_CERT_PATH (ca.pem, cert.pem, key.pem; default "
                "~/.docker) or the docker context's, and DOCKER_TLS_VERIFY.",
            ) from None
        raise EngineUnreachable(
            f"No Docker engine answers at {endpoint}.",
            "Start it ('sudo systemctl start docker' or 'sudo dockerd &'), or point DOCKER_HOST "
            "or 'docker context use' at a running engine.",
        ) from None


def explain(exc: Exception) -> str:
    """The engine's own words for ``exc``, without a closing period: our messages add theirs."""
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc).strip().rstrip(".")
