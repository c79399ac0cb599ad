"""Debian packages and their dependency closure, from this machine's apt sources, offline-friendly.

apt resolves the closure as if nothing were installed (an empty dpkg status), so the result does
not depend on the host's installed packages, only on its package lists: the same lists give the
same closure and the same versions, which is what toolbox images are cached by.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from distrodebug.toolbox import ImageBuildError

#: Packages that only serve maintainer scripts, which never run in a toolbox: dropping them keeps
#: perl, PAM and user management out of every image. Libraries the tools link are never here.
MAINTAINER_ONLY = frozenset({
    "adduser", "debconf", "dpkg", "init-system-helpers", "libpam-modules", "libpam-modules-bin",
    "libpam-runtime", "libsemanage-common", "libsemanage2", "lsb-base", "passwd", "perl-base",
    "sensible-utils", "sysvinit-utils", "ucf", "libcap2-bin", "tzdata", "debianutils",
})
_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
_INST = re.compile(r"^Inst (\S+) \((\S+) ")

HINT = (
    "Debian packages come from this machine's apt sources: run 'apt-get update' once, and check "
    "the name with 'apt-cache policy NAME'"
)


@dataclass(frozen=True, order=True)
class Package:
    name: str
    version: str

    def __str__(self) -> str:
        return f"{self.name}={self.version}"


def check_names(names: Iterable[str]) -> tuple[str, ...]:
    """Sorted, de-duplicated package names; a name apt could never accept is a usage error."""
    from distrodebug.errors import UsageError

    found = sorted({name.strip().lower() for name in names if name.strip()})
    bad = [name for name in found if not _NAME.match(name)]
    if bad:
        raise UsageError(f"'{bad[0]}' is not a Debian package name.",
                         "Use names as 'apt-cache policy' knows them, e.g. --with strace,tcpdump.")
    if not found:
        raise UsageError("--with names no package.", "Example: --with strace,tcpdump.")
    return tuple(found)


def closure(names: Iterable[str]) -> tuple[Package, ...]:
    """Every package `names` needs (Depends and Pre-Depends, no Recommends), with versions."""
    wanted = list(names)
    if shutil.which("apt-get") is None:
        raise ImageBuildError("apt-get is not available to resolve " + ", ".join(wanted), HINT)
    argv = ["apt-get", "install", "--simulate", "--no-install-recommends", "-qq",
            "-o", "Dir::State::status=/dev/null", "-o", "Debug::NoLocking=1", *wanted]
    done = subprocess.run(argv, capture_output=True, text=True, check=False,
                          env={"LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.splitlines() if ln.startswith("E:")] or \
            done.stderr.strip().splitlines()[-2:]
        unknown = [ln.rsplit(" ", 1)[-1] for ln in lines if "Unable to locate package" in ln]
        if unknown:
            from distrodebug.errors import UsageError

            raise UsageError(f"apt knows no package named {', '.join(unknown)}.", HINT + ".")
        raise ImageBuildError("apt cannot resolve " + ", ".join(wanted) + ": "
                              + " ".join(ln.removeprefix("E: ") for ln in lines), HINT)
    found = {Package(m[1], m[2]) for m in map(_INST.match, done.stdout.splitlines()) if m}
    keep = tuple(sorted(p for p in found if p.name not in MAINTAINER_ONLY or p.name in wanted))
    missing = set(wanted) - {p.name for p in keep}
    if missing:
        raise ImageBuildError(f"apt did not resolve {', '.join(sorted(missing))}", HINT)
    return keep


def unpack(deb: Path, dest: Path) -> None:
    """dpkg -x: the package's files, no maintainer script run."""
    done = subprocess.run(["dpkg", "-x", str(deb), str(dest)], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise ImageBuildError(f"cannot unpack {deb.name}: {done.stderr.strip()}",
                              "install dpkg (Debian and Ubuntu ship it)")


def members(deb: Path) -> list[str]:
    """The paths a package installs, as './usr/bin/strace'."""
    done = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True,
                          check=False)
    if done.returncode != 0:
        raise ImageBuildError(f"cannot read {deb.name}", "install dpkg (Debian and Ubuntu ship it)")
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as tar:
        return tar.getnames()
