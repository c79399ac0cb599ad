"""Bundles being written, so that `cleanup` can find what a killed dump left.

A dump writes to ``.NAME.partial-XXXXXXXX`` beside its output and renames it when complete; it
removes it on any failure it lives through. A SIGKILL, a power cut or a crash leaves it, with
nothing pointing at it. So each dump in progress keeps a record in the user's state directory
(``$XDG_STATE_HOME/distrodebug/partial/``, mode 0700): the temporary file's path and the owner's
host and PID. `cleanup` removes the files of records whose owner is gone, and the records.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from distrodebug import labels

#: Only files named as the writer names them are ever removed by cleanup.
_PARTIAL_NAME = re.compile(r"^\..+\.partial-[0-9a-f]{8}$")


@dataclass(frozen=True)
class Partial:
    path: Path
    record: Path
    alive: bool


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "distrodebug" / "partial"


def register(tmp: Path) -> Path | None:
    """Record a bundle being written; None when the state directory cannot be written."""
    folder = state_dir()
    record = folder / f"{os.getpid()}-{tmp.name[-8:]}.json"
    owner = {labels.OWNER_HOST: labels.this_host(), labels.OWNER_PID: str(os.getpid())}
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        record.write_text(json.dumps({"path": str(tmp.resolve()), "owner": owner}))
    except OSError:
        return None  # cleanup will not find this one; the dump itself is not worth failing
    return record


def unregister(record: Path | None) -> None:
    if record is not None:
        with contextlib.suppress(OSError):
            record.unlink()


def found() -> list[Partial]:
    """Every recorded bundle in progress, each marked alive while its owner may still run."""
    partials = []
    for record in sorted(state_dir().glob("*.json")):
        try:
            data = json.loads(record.read_text())
            path, owner = Path(str(data["path"])), dict(data["owner"])
        except (OSError, ValueError, KeyError, TypeError):
            partials.append(Partial(Path(""), record, False))  # unreadable: drop the record
            continue
        partials.append(Partial(path, record, labels.owner_alive(owner)))
    return partials


def remove(partial: Partial) -> None:
    """Remove a dead dump's temporary file (only one named as ours, never through a link)."""
    if _PARTIAL_NAME.match(partial.path.name):
        with contextlib.suppress(OSError):
            if not partial.path.is_symlink() and partial.path.is_file():
                partial.path.unlink()
    unregister(partial.record)
