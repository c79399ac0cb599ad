"""Warm sidecars: a second `exec`, `cp` or `dump` on the same target reuses a running sidecar.

Starting a container is most of an exec's cost (issue 12). A command run without a TTY in
join mode therefore runs as a `docker exec` in a sidecar kept for the purpose: started once,
with our idle loop as its process, removed by the engine (AutoRemove) when the loop has seen
nothing of ours run for ``warm_idle`` seconds, or at once when its target stops (it lives in the
target's PID namespace).

Reuse never mixes two targets or two privilege choices: the sidecar carries a hash of
everything it was created with (image, user, capabilities, security options, limits,
namespaces joined, which hold the target's container ID, environment) and only a running
sidecar with exactly that hash is used. Nothing is written into the target: the exec runs the
same entry script a fresh sidecar would, under our subreaper, so orphans of the command are
reaped in the sidecar, not left to the target's PID 1.

An exec cannot be killed through the Docker API, and closing its stream does not end it, so
every exec carries a random token in its argv (the word the entry script sees as ``$0``): an
interrupted command is ended by a second exec that signals the processes holding the token.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping
from typing import Any

from distrodebug import labels as ours
from distrodebug.model import SidecarSpec
from distrodebug.sidecar import IDLE_SCRIPT

#: The label holding the hash a warm sidecar was made for.
WARM = "io.distrodebug.warm"
ROLE = "warm"
#: Set when our subreaper was lent to the sidecar (a debug image without one): execs run it.
LENT = "io.distrodebug.lent-reaper"

# Ends the processes whose argv holds DD_KILL's value: the reaper first (it forwards the signal
# and ends what it adopted), then anything else carrying it. The token travels in the
# environment so that no process of this script holds it in its own argv.
KILL_SCRIPT = r"""
for f in /proc/[0-9]*/cmdline; do
  p=${f#/proc/}; p=${p%/cmdline}
  c=$(tr '\0' ' ' < "$f" 2>/dev/null) || continue
  case "$c" in *"$DD_KILL"*) kill -TERM "$p" 2>/dev/null ;; esac
done
"""


def eligible(spec: SidecarSpec) -> bool:
    """A command without a TTY, joined to a running target, attached, with reuse switched on."""
    return spec.mode == "join" and not spec.tty and spec.options.attach and spec.options.warm_idle > 0


def idle_kwargs(kwargs: Mapping[str, Any], spec: SidecarSpec, lent_reaper: str | None) -> dict[str, Any]:
    """A sidecar's create arguments turned into the warm sidecar's: the idle loop as its
    process (under the reaper), no stdin, removed by the engine when the loop ends."""
    if lent_reaper:
        reaper: tuple[str, ...] = (lent_reaper,)
    else:
        reaper = tuple(spec.argv[:1]) if spec.argv[0].endswith("reaper") else ()
    argv = (*reaper, "/bin/sh", "-c", IDLE_SCRIPT)
    host = dict(kwargs["host_config"])
    host["auto_remove"] = True
    env = {**dict(kwargs["environment"]), "DD_IDLE": str(spec.options.warm_idle)}
    warm = {**kwargs, "entrypoint": list(argv[:1]), "command": list(argv[1:]), "environment": env,
            "stdin_open": False, "tty": False, "host_config": host}
    lent = {LENT: "1"} if lent_reaper else {}
    warm["labels"] = {**dict(kwargs["labels"]), ours.ROLE: ROLE, WARM: request_hash(warm), **lent}
    return warm


def request_hash(kwargs: Mapping[str, Any]) -> str:
    """What the sidecar was made with, less its name and labels (they name one session) and its
    argv (our idle loop, with a reaper lent or not: the LENT label says which)."""
    made = {k: v for k, v in kwargs.items() if k not in ("name", "labels", "entrypoint", "command")}
    return hashlib.sha256(json.dumps(made, sort_keys=True, default=str).encode()).hexdigest()[:40]


def exec_argv(spec: SidecarSpec, lent_reaper: str | None) -> tuple[tuple[str, ...], str]:
    """The command's argv for `docker exec` (the reaper first) and the token it carries."""
    token = f"distrodebug-x{secrets.token_hex(8)}"
    argv = list(spec.argv)
    if lent_reaper:
        argv.insert(0, lent_reaper)
    # entry_argv puts "distrodebug" as the script's $0, right after `-c SCRIPT`.
    at = argv.index("-c") + 2
    argv[at] = token
    return tuple(argv), token


def label_filter(kwargs: Mapping[str, Any]) -> dict[str, list[str]]:
    """The engine-side filter for running warm sidecars made exactly like ``kwargs``."""
    return {"label": [f"{WARM}={kwargs['labels'][WARM]}"], "status": ["running"]}
