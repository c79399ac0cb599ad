"""Live sessions and leftovers: what `sessions` lists and `cleanup` removes.

A session's objects carry the owner's host and PID as labels (labels.py). On this host, an
owner PID that no longer runs means the session crashed and its objects are leftovers; objects
from other hosts are only removed with --all, since we cannot tell whether their session runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from distrodebug import labels
from distrodebug.model import OwnedObject


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

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def classify(found: Sequence[OwnedObject]) -> list[Item]:
    """Our objects as Items, each marked alive or not."""
    items = []
    for obj in found:
        tags = obj.labels
        owner = tags.get(labels.OWNER) or (
            f"{tags.get(labels.OWNER_HOST, '')}:{tags.get(labels.OWNER_PID, '')}".strip(":"))
        items.append(
            Item(
                kind=obj.kind,
                id=obj.id,
                name=obj.name,
                state=obj.state,
                session=tags.get(labels.SESSION, ""),
                target=tags.get(labels.TARGET_NAME) or tags.get(labels.TARGET, ""),
                created=tags.get(labels.CREATED_AT) or tags.get(labels.CREATED, ""),
                owner=owner,
                # A warm sidecar outlives the command that started it and ends by itself when
                # idle (runtimes/docker/warm.py): running, it is in use or soon gone.
                alive=labels.owner_alive(tags) or (tags.get(labels.ROLE) == "warm"
                                                   and obj.state == "running"),
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
