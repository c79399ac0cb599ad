"""The labels and annotations every object distrodebug creates carries, so `sessions` and `cleanup`
can find it and tell a live session's objects from a crashed one's.

Label values must be valid on Kubernetes too: at most 63 characters of ``[A-Za-z0-9._-]``,
alphanumeric at both ends. So labels hold safe forms (a compact UTC time, a sanitised host name
and the PID apart, a target name shortened with a hash when it must be) and the raw values go in
annotations (Kubernetes) or extra labels (Docker, whose labels take any string).
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import socket
import time
from collections.abc import Mapping

TOOL = "distrodebug"
TOOL_KEY = "io.distrodebug.tool"
SESSION = "io.distrodebug.session"
ROLE = "io.distrodebug.role"
TARGET = "io.distrodebug.target"
CREATED = "io.distrodebug.created"
OWNER_HOST = "io.distrodebug.owner-host"
OWNER_PID = "io.distrodebug.owner-pid"
#: Annotations with the raw values the labels above can only hold in a safe form.
TARGET_NAME = "io.distrodebug/target"
CREATED_AT = "io.distrodebug/created"
OWNER = "io.distrodebug/owner"
#: Set on an image that carries our subreaper; its value is the reaper's path in the image.
REAPER = "io.distrodebug.reaper"

_LABEL_VALUE = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def is_label_value(text: str) -> bool:
    """True when Kubernetes accepts ``text`` as a label value."""
    return bool(_LABEL_VALUE.match(text))


def label_value(text: str) -> str:
    """``text`` as a valid label value: itself when it is one, else a readable part and a hash."""
    if is_label_value(text):
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:10]
    readable = _UNSAFE.sub("-", text).strip("-._")[:52].rstrip("-._")
    return f"{readable}-{digest}" if readable else f"h-{digest}"


def new_session_id() -> str:
    return secrets.token_hex(4)


def compact_time(seconds: float | None = None) -> str:
    """UTC time as 20261130T022350Z: sortable, and a valid label value."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if seconds is None else seconds))


def this_host() -> str:
    return label_value(socket.gethostname())


def session_labels(*, session_id: str, target: str, role: str = "sidecar") -> dict[str, str]:
    """Labels for one object of a session; every value is valid on Kubernetes."""
    return {
        TOOL_KEY: TOOL,
        SESSION: session_id,
        ROLE: role,
        TARGET: label_value(target),
        CREATED: compact_time(),
        OWNER_HOST: this_host(),
        OWNER_PID: str(os.getpid()),
    }


def session_annotations(*, target: str) -> dict[str, str]:
    """The raw values the labels hold in a safe form."""
    return {
        TARGET_NAME: target,
        CREATED_AT: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        OWNER: f"{socket.gethostname()}:{os.getpid()}",
    }


def selector() -> str:
    """The label selector (and Docker filter) that finds everything of ours."""
    return f"{TOOL_KEY}={TOOL}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_alive(labels: Mapping[str, str], host: str | None = None) -> bool:
    """True when the session that owns an object may still run (always, for another host's)."""
    pid = labels.get(OWNER_PID, "")
    if labels.get(OWNER_HOST, "") != (host or this_host()) or not pid.isdigit():
        return bool(labels.get(OWNER_HOST))
    return _pid_alive(int(pid))
