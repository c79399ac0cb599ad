"""How a toolbox of Debian tools is laid out so the tools work after the chroot into the target.

Inside the sidecar everything is at home; after ``chroot /proc/<pid>/root`` the toolbox is only
reachable as ``/proc/<P>/root`` and the target's libraries (if any) are not ours. So:

- every package is unpacked under the private prefix ``/opt/distrodebug`` (absolute symlinks made
  relative, so they keep pointing into the toolbox from any root);
- each tool on PATH is ``/usr/local/bin/NAME``, a hard link to ``distrodebug-launch`` (a static
  program, data/launcher.c) that execs the toolbox's own ELF loader with ``--library-path`` into
  the prefix as seen from wherever it runs; ``launch.conf`` names the loader and library folders;
- static programs (py-spy) go straight onto PATH;
- the busybox toolbox stays underneath (``/bin/sh``, the applets, the subreaper); an applet a
  package provides a real tool for (``nc``, ``ip``) is left out so the real one wins.
"""

from __future__ import annotations

import os
import shutil
import struct
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from distrodebug.toolbox import (
    REAPER_PATH,
    ImageBuildError,
    RootfsTar,
    busybox_applets,
    is_static_elf,
    passwd_files,
)

PREFIX = "opt/distrodebug"
LAUNCHER = "usr/local/bin/distrodebug-launch"
#: Read by the interactive shell (ENV): aliases that make a real tool win over a busybox applet,
#: which busybox sh would otherwise run first whatever PATH says.
SHELL_RC = "etc/distrodebug.rc"
_RC = r"""for f in "$DISTRODEBUG_TOOLS"/usr/local/bin/*; do
  n=${f##*/}; [ "$n" = distrodebug-launch ] || [ "$n" = distrodebug-reaper ] || alias "$n=$f"
done
unset f n
"""
BIN_DIR = "usr/local/bin"
TOOL_DIRS = ("usr/sbin", "usr/bin", "sbin", "bin")
#: Documentation and translations: nothing a tool needs to run.
DROPPED = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
           "usr/share/lintian", "usr/share/bug", "usr/share/bash-completion", "usr/share/zsh",
           "usr/share/fish", "usr/share/menu", "usr/share/applications", "usr/share/pixmaps",
           "etc/init.d", "etc/cron.daily", "lib/systemd", "usr/lib/systemd", "etc/apparmor.d")
_PT_INTERP = 3


@dataclass(frozen=True)
class Contents:
    """What goes into one toolbox besides busybox: unpacked packages, tools, static extras."""

    #: The unpacked packages (the prefix's content).
    tree: Path
    #: Tool names to put on PATH (each must exist in one of the prefix's TOOL_DIRS).
    tools: tuple[str, ...]
    #: Static programs to put on PATH as they are: name -> file.
    static: Mapping[str, Path] = field(default_factory=dict)
    #: Tools that find their own files from argv[0] (python): they see their real path there.
    real_argv0: tuple[str, ...] = ()


def interpreter(path: Path) -> str | None:
    """The PT_INTERP of a dynamically linked ELF (its loader's path), else None."""
    try:
        with path.open("rb") as f:
            head = f.read(64)
            if head[:4] != b"\x7fELF" or head[4] not in (1, 2):
                return None
            order = "<" if head[5] == 1 else ">"
            wide = head[4] == 2
            phoff = struct.unpack_from(order + ("Q" if wide else "I"), head, 32 if wide else 28)[0]
            entsize, count = struct.unpack_from(order + "HH", head, 54 if wide else 42)
            f.seek(phoff)
            table = f.read(entsize * count)
            for i in range(count):
                base = i * entsize
                if struct.unpack_from(order + "I", table, base)[0] != _PT_INTERP:
                    continue
                offset, size = ((struct.unpack_from(order + "Q", table, base + off)[0]
                                 for off in (8, 32)) if wide else
                                (struct.unpack_from(order + "I", table, base + off)[0]
                                 for off in (4, 16)))
                f.seek(offset)
                return f.read(size).rstrip(b"\0").decode()
    except (OSError, struct.error, UnicodeDecodeError):
        return None
    return None


def relativize_links(tree: Path) -> None:
    """Absolute symlinks inside `tree` made relative, so they resolve inside it from any root."""
    for here, dirs, files in os.walk(tree):
        for name in (*dirs, *files):
            link = Path(here) / name
            if not link.is_symlink():
                continue
            target = os.readlink(link)
            if target.startswith("/"):
                new = os.path.relpath(tree / target.lstrip("/"), link.parent)
                link.unlink()
                link.symlink_to(new)


def trim(tree: Path) -> None:
    for folder in DROPPED:
        path = tree / folder
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)


def library_dirs(tree: Path) -> list[str]:
    """Folders holding shared libraries, the multiarch ones first (the order ld.so would use)."""
    found = set()
    for here, _, files in os.walk(tree):
        if any(".so" in name for name in files):
            rel = os.path.relpath(here, tree)
            if not rel.startswith(("usr/share", "etc")):
                found.add(rel)

    def rank(rel: str) -> tuple[int, str]:
        depth = {"lib": 0, "usr/lib": 1}.get(os.path.dirname(rel), 2 + rel.count("/"))
        return depth, rel

    return sorted(found, key=rank)


def find_tool(tree: Path, name: str) -> Path | None:
    for folder in TOOL_DIRS:
        path = tree / folder / name
        if path.exists() and os.access(path, os.X_OK):
            return path
    return None


def is_elf(path: Path | None) -> bool:
    """True for an ELF file (scripts need an interpreter the target may not have: left out)."""
    try:
        with (path.resolve() if path else Path("/nonexistent")).open("rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def loader_of(tree: Path, tools: Iterable[str]) -> str | None:
    """The loader the dynamic tools ask for, relative to the prefix (lib64/ld-linux-x86-64.so.2)."""
    for name in tools:
        path = find_tool(tree, name)
        wanted = interpreter(path.resolve()) if path is not None else None
        if wanted:
            if not (tree / wanted.lstrip("/")).exists():
                raise ImageBuildError(f"{name} asks for the loader {wanted}, which no package "
                                      "in the toolbox provides", "add libc6 to the packages")
            return wanted.lstrip("/")
    return None


#: Arguments a tool gets before the user's. tcpdump would drop privileges to a user 'tcpdump' that
#: the target's /etc/passwd does not have, and refuse to start.
DEFAULT_ARGS = {"tcpdump": ("-Z", "root")}


def launch_conf(tree: Path, loader: str, real_argv0: Iterable[str] = (),
                tools: Iterable[str] = ()) -> str:
    args = [f"args {name} {' '.join(DEFAULT_ARGS[name])}" for name in tools if name in DEFAULT_ARGS]
    return "\n".join(["# distrodebug-launch: loader, then library folders", loader,
                      *library_dirs(tree), *(f"argv0-path {name}" for name in real_argv0),
                      *args]) + "\n"


def write_rootfs(tar_path: Path, *, busybox: Path, reaper: Path | None, launcher: Path | None,
                 contents: Contents) -> list[str]:
    """The toolbox root filesystem tar; returns the names put on PATH besides busybox's."""
    tree = contents.tree
    dynamic: list[str] = []
    for name in contents.tools:
        path = find_tool(tree, name)
        if path is None:
            raise ImageBuildError(f"the packages provide no program named {name}",
                                  "check the tool names of the toolbox")
        if not is_static_elf(path.resolve()):
            dynamic.append(name)
    loader = loader_of(tree, dynamic) if dynamic else None
    if dynamic and launcher is None:
        raise ImageBuildError("gcc is needed to build distrodebug-launch for dynamically linked "
                              "tools", "apt-get install gcc libc6-dev")
    on_path = set(dynamic) | set(contents.static)
    with RootfsTar(tar_path, "w", format=tarfile.PAX_FORMAT) as root:
        root.directory("bin")
        root.copy("bin/busybox", busybox)
        for applet in busybox_applets(busybox):
            if applet not in on_path:
                root.hardlink(f"bin/{applet}", "bin/busybox")
        root.directory("etc")
        for name, content in passwd_files("/bin/sh").items():
            root.data(name, content)
        root.data(SHELL_RC, _RC.encode())
        root.directory("tmp", 0o1777)
        for folder in ("usr", "usr/local", BIN_DIR, "opt"):
            root.directory(folder)
        if reaper is not None:
            root.copy(REAPER_PATH.lstrip("/"), reaper)
        for name, path in sorted(contents.static.items()):
            root.copy(f"{BIN_DIR}/{name}", path)
        if dynamic:
            assert launcher is not None and loader is not None
            root.add(tree, arcname=PREFIX, filter=_root_owned)
            conf = launch_conf(tree, loader, contents.real_argv0, dynamic)
            root.data(f"{PREFIX}/launch.conf", conf.encode())
            root.copy(LAUNCHER, launcher)
            for name in dynamic:
                root.hardlink(f"{BIN_DIR}/{name}", LAUNCHER)
    return sorted(on_path)


def _root_owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info
