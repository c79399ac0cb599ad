"""Live sessions and leftovers: what `sessions` lists and `cleanup` removes.

A session's objects carry the owner label host:pid. On this host, an owner pid that no longer
runs means the session crashed and its objects are leftovers; objects from other hosts are only
removed with --all, since we cannot tell whether their session still runs.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from distrodebug import settings


@dataclass(frozen=True)
class Item:
    kind: str
    id: str
    name: str
    state: str
    session: str
    target: str
    created: str
    owner: str
    alive: bool


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_alive(owner: str, host: str | None = None) -> bool:
    """True when the session that owns an object may still be running."""
    this_host = host or socket.gethostname()
    name, _, pid = owner.rpartition(":")
    if name != this_host or not pid.isdigit():
        return True
    return _pid_alive(int(pid))


def classify(found: Sequence[Mapping[str, Any]]) -> list[Item]:
    """Our objects as Items, each marked alive or not."""
    items = []
    for entry in found:
        labels = entry.get("labels") or {}
        owner = labels.get(settings.LABEL_OWNER, "")
        items.append(
            Item(
                kind=entry["kind"],
                id=entry["id"],
                name=entry["name"],
                state=entry.get("state", ""),
                session=labels.get(settings.LABEL_SESSION, ""),
                target=labels.get(settings.LABEL_TARGET, ""),
                created=labels.get(settings.LABEL_CREATED, ""),
                owner=owner,
                alive=owner_alive(owner) if owner else False,
            )
        )
    return items


def removable(items: Sequence[Item], everything: bool) -> list[Item]:
    """What cleanup removes: dead sessions' objects, or all of ours with --all.

    Containers go first so that the images and volumes they use can be removed after them.
    """
    chosen = [item for item in items if everything or not item.alive]
    order = {"container": 0, "image": 1, "volume": 2}
    return sorted(chosen, key=lambda item: order.get(item.kind, 3))
