"""What one shell, exec, cp or dump leaves behind: audit entries, a recording, a cluster Event.

A shell writes a ``start`` entry once its sidecar runs and an ``end`` entry when it is over; exec,
cp and dump write one entry when they end, with their exit status. Entries say who (local user,
uid, host), when (UTC), what (the command and its arguments, secret-looking values redacted as
in a dump), on what (the target's names, IDs, image and digest), with which privileges, why
(``--reason``), how it ended, and which recording holds the session (path and sha256).
"""

from __future__ import annotations

import datetime
import os
import pwd
import secrets
import socket
from collections.abc import Mapping, Sequence
from typing import Any

from distrodebug.audit import log
from distrodebug.audit.recording import Recorder
from distrodebug.bundle.redact import REDACTED, is_secret_name, redact_data, redact_text
from distrodebug.model import TargetInfo
from distrodebug.runtimes.base import Runtime, Sidecar
from distrodebug.session import UI, Plan
from distrodebug.target import Target


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds").replace(
        "+00:00", "Z")


def new_id() -> str:
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


def who() -> dict[str, Any]:
    uid = os.getuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    return {"user": name, "uid": uid, "host": socket.gethostname()}


def redact_args(args: Sequence[str]) -> list[str]:
    """The command line with every value a dump would redact replaced, also inside option
    values (``--env=TOKEN=x``, ``--env TOKEN=x``)."""
    out, _ = redact_data(list(args))
    cleaned = []
    for item in out:
        flag, eq, value = str(item).partition("=")
        if eq and flag.startswith("-") and "=" in value:
            name, _, secret = value.partition("=")
            if is_secret_name(name) and secret:
                item = f"{flag}={name}={REDACTED}"
        cleaned.append(str(item))
    return cleaned


def describe_target(ref: Target, runtime: str, info: TargetInfo | None,
                    identity: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The target of an entry: as named, and once planned as found (``identity`` from
    Runtime.audit_identity)."""
    found: dict[str, Any] = {"ref": str(ref), "runtime": runtime}
    if info is None:
        return found
    found.update(name=info.name, image=info.image, image_id=info.image_id)
    if info.repo_digests:
        found["image_digests"] = list(info.repo_digests)
    found.update(identity or {})
    return found


class Witness:
    """The session.Witness of one command; :meth:`finish` writes its last entry."""

    def __init__(self, command: str, args: Sequence[str], target: Target, reason: str | None,
                 *, record: bool, ui: UI, title: str = "") -> None:
        self.id = new_id()
        self.command = command
        self.args = redact_args(args)
        self.target = target
        self.reason = redact_text(reason)[0] if reason else None
        self.record = record
        self.ui = ui
        self.title = title or f"distrodebug {command} {target}"
        self.runtime_kind: str = target.runtime
        self.identity: dict[str, str] = {}
        self.plan: Plan | None = None
        self.sidecar = ""
        self.recorder: Recorder | None = None
        self._announced: set[str] = set()
        self._started_logged = False

    def _entry(self, event: str) -> dict[str, Any]:
        chosen = self.plan
        return {
            "id": self.id, "event": event, "time": now(), **who(), "command": self.command,
            "args": self.args,
            "target": describe_target(self.target, self.runtime_kind,
                                      chosen.info if chosen else None, self.identity),
            "mode": chosen.mode if chosen else None,
            "privileges": chosen.privileges.describe() if chosen else None,
            "sidecar": self.sidecar or None, "reason": self.reason,
        }

    # -- session.Witness -------------------------------------------------------------------------
    def started(self, runtime: Runtime, chosen: Plan, started: Sidecar) -> None:
        if self.plan is None:
            self.plan = chosen
            self.sidecar = started.id
            self.runtime_kind = runtime.kind
            self.identity = runtime.audit_identity(chosen.info)
        if self.command == "shell" and not self._started_logged:
            self._started_logged = True
            log.append(self._entry("start"))
        key = chosen.info.id
        if key not in self._announced:
            self._announced.add(key)
            user = who()
            # The local log's head goes to the cluster too: a log rewritten afterwards would
            # have to match what the cluster kept.
            anchor = log.head()
            message = (f"debugged by {user['user']} from {user['host']}: "
                       f"{self.reason or 'no reason given'} ({self.command}, audit {self.id}"
                       f"{f', log head {anchor}' if anchor else ''})")
            refused = runtime.announce(chosen.info, message)
            if refused:
                self.ui.notice(f"distrodebug: {refused}")

    def recording(self, rows: int, cols: int) -> Recorder | None:
        if not self.record or self.recorder is not None:
            return None
        self.recorder = Recorder.create(self.id, rows=rows, cols=cols, title=self.title,
                                        term=os.environ.get("TERM", "xterm"))
        return self.recorder

    # -- the end ---------------------------------------------------------------------------------
    def finish(self, exit_code: int) -> dict[str, Any]:
        """Write the command's last entry (a shell's end, or the one entry of exec, cp, dump)."""
        entry = self._entry("end" if self.command == "shell" else self.command)
        entry["exit"] = exit_code
        if self.recorder is not None:
            entry["recording"] = {"path": str(self.recorder.path), "sha256": self.recorder.close()}
        else:
            entry["recording"] = None
        return log.append(entry)
