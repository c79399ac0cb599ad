from __future__ import annotations

import os
import socket

from distrodebug import cleanup as leftovers
from distrodebug import settings


def entry(kind: str, owner: str) -> dict[str, object]:
    return {"kind": kind, "id": kind + owner, "name": kind, "state": "",
            "labels": {settings.LABEL_OWNER: owner, settings.LABEL_SESSION: "s"}}


def test_dead_owner_is_a_leftover_live_one_is_not() -> None:
    host = socket.gethostname()
    items = leftovers.classify([
        entry("volume", f"{host}:999999999"),
        entry("container", f"{host}:{os.getpid()}"),
        entry("image", f"{host}:999999998"),
        entry("container", "elsewhere:1"),
    ])
    assert [i.alive for i in items] == [False, True, False, True]
    doomed = leftovers.removable(items, everything=False)
    assert [i.kind for i in doomed] == ["image", "volume"]
    assert [i.kind for i in leftovers.removable(items, everything=True)][:2] == [
        "container", "container"]
