"""The user's state directory, and private files in it that a planted link cannot redirect.

``$DISTRODEBUG_STATE_DIR`` (tests point it at a temporary directory), else
``$XDG_STATE_HOME/distrodebug``, else ``~/.local/state/distrodebug``. Directories we make are
0700, files 0600. Every file is opened relative to a directory descriptor that was itself opened
with O_NOFOLLOW and checked to be ours, with O_NOFOLLOW on the file: a symlink planted at either
place makes the open fail instead of writing where it points.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from distrodebug.errors import DistrodebugError


class StateError(DistrodebugError):
    """The state directory or a file in it cannot be used safely."""


def state_dir() -> Path:
    explicit = os.environ.get("DISTRODEBUG_STATE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "distrodebug"


def _refuse(path: Path, why: str) -> StateError:
    return StateError(f"distrodebug's state directory cannot be used: {path} {why}.",
                      "Remove or fix it (it should be a directory of yours, mode 0700), or point "
                      "DISTRODEBUG_STATE_DIR at another directory.")


@contextlib.contextmanager
def directory(*parts: str, create: bool = True) -> Iterator[int]:
    """A descriptor of the state directory (or a folder in it), made 0700 when ``create``.

    FileNotFoundError when it does not exist and ``create`` is false."""
    base = state_dir()
    if create:
        base.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = _open_dir_at(None, str(base), base, create)
    try:
        for part in parts:
            base = base / part
            inner = _open_dir_at(fd, part, base, create)
            os.close(fd)
            fd = inner
        yield fd
    finally:
        os.close(fd)


def _open_dir_at(parent: int | None, name: str, shown: Path, create: bool) -> int:
    if create:
        try:
            os.mkdir(name, 0o700, dir_fd=parent)
        except FileExistsError:
            pass
        except OSError as exc:
            raise _refuse(shown, f"cannot be created ({exc.strerror})") from None
    try:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                     dir_fd=parent)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise _refuse(shown, "is not a directory one can open without following a link "
                             f"({exc.strerror})") from None
    info = os.fstat(fd)
    if info.st_uid != os.getuid():
        os.close(fd)
        raise _refuse(shown, f"belongs to uid {info.st_uid}, not to you")
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.fchmod(fd, 0o700)
    return fd


def open_private(dir_fd: int, name: str, flags: int, where: Path) -> int:
    """Open ``name`` in ``dir_fd`` without following a link; a file we create is 0600, one that
    exists must be a regular file of ours (and is made 0600)."""
    try:
        fd = os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
    except FileNotFoundError:
        raise
    except FileExistsError:
        raise _refuse(where / name, "already exists") from None
    except OSError as exc:
        raise _refuse(where / name, f"cannot be opened without following a link "
                                    f"({exc.strerror})") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
        os.close(fd)
        raise _refuse(where / name, "is not a regular file of yours")
    if stat.S_IMODE(info.st_mode) != 0o600 and flags & (os.O_WRONLY | os.O_RDWR):
        os.fchmod(fd, 0o600)
    return fd
