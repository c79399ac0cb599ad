"""Offline image builders: a static busybox or Debian packages -> root filesystem tar -> import.

No registry is needed. The engine side is an ``importer`` callback (``docker import`` with
``--change`` instructions), so this module stays free of any SDK.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import struct
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import IO

from distrodebug.errors import DistrodebugError

# importer(tar_path, image_ref, changes) -> image id; changes are `docker import --change` lines.
Importer = Callable[[Path, str, list[str]], str]

TOOLBOX_REF = "distrodebug/busybox:1"
DEMO_REF = "distrodebug/demo-python:3.11"
CONTENT_LABEL = "io.distrodebug.content"
REAPER_LABEL = "io.distrodebug.reaper"
REAPER_PATH = "/usr/local/bin/distrodebug-reaper"
TOOLBOX_PATH = "/bin:/usr/local/bin"
PYTHON_ENTRYPOINT = "/usr/bin/python3.11"

# What gcr.io/distroless/python3 (Debian 12) is made of, minus what its postinst scripts do.
PYTHON_PACKAGES = (
    "python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib", "libc6", "zlib1g",
    "libexpat1", "libssl3", "libffi8", "libbz2-1.0", "liblzma5", "libsqlite3-0", "libcrypt1",
    "libdb5.3", "libgdbm6", "libnsl2", "libtirpc3", "libuuid1", "libncursesw6", "libtinfo6",
    "libgcc-s1", "tzdata", "ca-certificates",
)
SHELL_NAMES = frozenset({"sh", "ash", "bash", "dash", "rbash", "ksh", "mksh", "zsh", "csh",
                         "tcsh", "fish", "busybox", "toybox"})
_BIN_DIRS = ("bin", "sbin", "usr/bin", "usr/sbin", "usr/local/bin", "usr/local/sbin")
_PYTHON_BINARIES = frozenset({"usr/bin/python3.11", "usr/bin/python3"})
_DROPPED_DIRS = ("usr/share/man", "usr/share/info", "usr/share/lintian", "usr/share/binfmts")
_NONROOT_UID = 65532
_PT_INTERP = 3


class ImageBuildError(DistrodebugError):
    """An image could not be built offline; ``hint`` says what to install or run."""


def cache_dir() -> Path:
    """Where downloaded packages live: $XDG_CACHE_HOME/distrodebug or ~/.cache/distrodebug."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "distrodebug"


def content_digest(*parts: str | bytes) -> str:
    """sha256 over length-prefixed parts, so ("ab", "c") and ("a", "bc") differ."""
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()


def file_digest(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _matches(path: Path, sha256: str) -> bool:
    return path.is_file() and file_digest(path) == sha256


def image_tag_for(kind: str, digest: str) -> str:
    """An immutable reference for one build of `kind`, e.g. distrodebug/busybox:c-0123abcd..."""
    return f"distrodebug/{kind}:c-{digest[:16]}"


def needs_build(existing_labels: dict[str, str] | None, digest: str) -> bool:
    """True unless an image exists whose content label already equals `digest`."""
    return existing_labels is None or existing_labels.get(CONTENT_LABEL) != digest


def _builder_source() -> bytes:
    # Any change to how images are assembled must invalidate images built before it.
    try:
        return Path(__file__).read_bytes()
    except OSError:
        return b"distrodebug.toolbox"


def _data_text(name: str) -> str:
    return resources.files("distrodebug").joinpath("data").joinpath(name).read_text("utf-8")


def _run(argv: Sequence[str], what: str, hint: str, cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise ImageBuildError(f"{what}: {exc}", hint) from exc
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise ImageBuildError(f"{what}: " + " ".join(detail), hint)
    return done.stdout


def is_static_elf(path: Path) -> bool:
    """True for an ELF executable without a PT_INTERP program header (no dynamic loader)."""
    try:
        with path.open("rb") as f:
            head = f.read(64)
            if head[:4] != b"\x7fELF" or len(head) < 52 or head[4] not in (1, 2):
                return False
            order = "<" if head[5] == 1 else ">"
            # after e_ident: type machine version entry phoff shoff flags ehsize phentsize phnum
            fields = order + ("HHIQQQIHHH" if head[4] == 2 else "HHIIIIIHHH")
            e_type, _, _, _, phoff, _, _, _, entsize, count = struct.unpack_from(fields, head, 16)
            if e_type not in (2, 3) or count == 0 or entsize < 4:  # ET_EXEC or ET_DYN (PIE)
                return False
            f.seek(phoff)
            table = f.read(entsize * count)
            types = {struct.unpack_from(order + "I", table, i * entsize)[0] for i in range(count)}
    except (OSError, struct.error):
        return False
    return _PT_INTERP not in types


_APT_HINT = (
    "this needs Debian 12 (bookworm) apt sources and network access once (run `apt-get update`);"
    " the packages are then cached in ~/.cache/distrodebug/debs"
)


def fetch_debs(packages: Iterable[str]) -> list[Path]:
    """The candidate .deb of each package, downloaded once into the cache and checksum-verified."""
    names = list(packages)
    if shutil.which("apt-get") is None:
        raise ImageBuildError("apt-get is not available to fetch " + ", ".join(names), _APT_HINT)
    listing = _run(["apt-get", "download", "--print-uris", *names], "cannot resolve packages",
                   _APT_HINT)
    wanted: dict[str, str] = {}  # file name -> sha256, in apt's order (not ours)
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[3].startswith("SHA256:"):
            wanted[fields[1]] = fields[3].removeprefix("SHA256:")
    if len(wanted) != len(names):
        raise ImageBuildError(f"apt resolved {len(wanted)} of {len(names)} packages", _APT_HINT)
    debs = cache_dir() / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    missing = [f for f, sha in wanted.items() if not _matches(debs / f, sha)]
    if missing:
        # Download beside the cache and rename, so a concurrent build never sees half a file.
        with tempfile.TemporaryDirectory(dir=debs, prefix=".download-") as tmp:
            _run(["apt-get", "download", *(f.split("_")[0] for f in missing)],
                 "cannot download packages", _APT_HINT, cwd=Path(tmp))
            for name in missing:
                if not _matches(Path(tmp) / name, wanted[name]):
                    raise ImageBuildError(f"{name} is not what apt listed", _APT_HINT)
                os.replace(Path(tmp) / name, debs / name)
    return [debs / f for f in sorted(wanted)]


def _dpkg_extract(deb: Path, dest: Path) -> None:
    _run(["dpkg", "-x", str(deb), str(dest)], f"cannot unpack {deb.name}",
         "install dpkg (Debian/Ubuntu ship it)")


class RootfsTar(tarfile.TarFile):
    """A root filesystem written straight to a tar file; entries are root-owned by default."""

    def _add(self, name: str, kind: bytes, mode: int, size: int = 0, link: str = "",
             fileobj: IO[bytes] | None = None) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.size, info.linkname = kind, mode, size, link
        self.addfile(info, fileobj)

    def directory(self, name: str, mode: int = 0o755) -> None:
        self._add(name, tarfile.DIRTYPE, mode)

    def data(self, name: str, content: bytes, mode: int = 0o644) -> None:
        self._add(name, tarfile.REGTYPE, mode, len(content), fileobj=io.BytesIO(content))

    def copy(self, name: str, source: Path, mode: int = 0o755) -> None:
        with source.open("rb") as f:
            self._add(name, tarfile.REGTYPE, mode, source.stat().st_size, fileobj=f)

    def hardlink(self, name: str, target: str) -> None:
        self._add(name, tarfile.LNKTYPE, 0o755, link=target)

    def tree(self, source: Path, owners: dict[str, int] | None = None) -> None:
        """Add everything under `source` (hard links kept); root-owned except `owners` paths."""
        owners = owners or {}

        def reown(info: tarfile.TarInfo) -> tarfile.TarInfo:
            info.uid = info.gid = owners.get(info.name, 0)
            info.uname = info.gname = ""  # the host's user names mean nothing in the image
            return info

        for child in sorted(source.iterdir()):
            self.add(child, arcname=child.name, filter=reown)


def passwd_files(login_shell: str) -> dict[str, bytes]:
    """/etc/passwd and /etc/group with root, nobody and nonroot (65532) as distroless has."""
    passwd = (
        f"root:x:0:0:root:/root:{login_shell}\n"
        f"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
        f"nonroot:x:{_NONROOT_UID}:{_NONROOT_UID}:nonroot:/home/nonroot:/sbin/nologin\n"
    )
    group = f"root:x:0:\nnobody:x:65534:\nnonroot:x:{_NONROOT_UID}:\n"
    return {"etc/passwd": passwd.encode(), "etc/group": group.encode()}


def find_static_busybox() -> Path:
    """A static busybox: the host's if it is static, else busybox-static from apt (cached)."""
    for candidate in (Path("/bin/busybox"), Path("/usr/bin/busybox")):
        if is_static_elf(candidate):
            return candidate
    hint = ("install busybox-static (apt-get install busybox-static), or build sidecars/busybox"
            " with docker where a registry is reachable")
    try:
        (deb,) = fetch_debs(["busybox-static"])
    except ImageBuildError as exc:
        raise ImageBuildError(f"no static busybox on this machine ({exc.message})", hint) from exc
    unpacked = cache_dir() / "busybox-static" / deb.stem
    if not (unpacked / "bin" / "busybox").is_file():
        unpacked.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=unpacked.parent, prefix=".unpack-") as tmp:
            _dpkg_extract(deb, Path(tmp) / "x")
            if not unpacked.exists():
                os.replace(Path(tmp) / "x", unpacked)
    binary = unpacked / "bin" / "busybox"
    if not is_static_elf(binary):
        raise ImageBuildError(f"{deb.name} did not contain a static bin/busybox", hint)
    return binary


def compile_static(source: Path, output: Path) -> Path | None:
    """`gcc -static` a single C file; None when there is no gcc at all."""
    gcc = shutil.which("gcc")
    if gcc is None:
        return None
    argv = [gcc, "-static", "-Os", "-s", "-Wall", "-Wextra", "-Werror", "-o", str(output),
            str(source)]
    _run(argv, f"cannot compile {source.name}", "static linking needs libc6-dev (libc.a)")
    return output


def reaper_source() -> str:
    return _data_text("reaper.c")


def build_reaper(out_dir: Path) -> Path | None:
    """Compile distrodebug-reaper into `out_dir`; None when gcc is missing (caller warns)."""
    source = out_dir / "reaper.c"
    source.write_text(reaper_source(), "utf-8")
    return compile_static(source, out_dir / "distrodebug-reaper")


def busybox_applets(busybox: Path) -> list[str]:
    out = _run([str(busybox), "--list"], "cannot list busybox applets", "")
    return [a for a in out.split() if a != "busybox" and "/" not in a]


def toolbox_digest(busybox: Path | None = None, with_reaper: bool | None = None) -> str:
    """What the toolbox image would be built from; compare with its content label."""
    busybox = busybox or find_static_busybox()
    if with_reaper is None:
        with_reaper = shutil.which("gcc") is not None
    reaper = reaper_source() if with_reaper else ""
    return content_digest("toolbox", _builder_source(), file_digest(busybox), reaper)


def toolbox_rootfs(tar_path: Path, busybox: Path, reaper: Path | None) -> None:
    """The tree of sidecars/busybox/Dockerfile: one busybox, a hard link per applet."""
    with RootfsTar(tar_path, "w", format=tarfile.PAX_FORMAT) as root:
        root.directory("bin")
        root.copy("bin/busybox", busybox)
        for applet in busybox_applets(busybox):
            root.hardlink(f"bin/{applet}", "bin/busybox")
        root.directory("etc")
        for name, content in passwd_files("/bin/sh").items():
            root.data(name, content)
        root.directory("tmp", 0o1777)
        if reaper is not None:
            for folder in ("usr", "usr/local", "usr/local/bin"):
                root.directory(folder)
            root.copy(REAPER_PATH.lstrip("/"), reaper)


def build_toolbox(importer: Importer, ref: str = TOOLBOX_REF) -> str:
    """Build the default toolbox sidecar image offline; returns the image id."""
    busybox = find_static_busybox()
    with tempfile.TemporaryDirectory(prefix="distrodebug-toolbox-") as tmp:
        reaper = build_reaper(Path(tmp))
        digest = toolbox_digest(busybox, reaper is not None)
        tar_path = Path(tmp) / "rootfs.tar"
        toolbox_rootfs(tar_path, busybox, reaper)
        changes = [f"ENV PATH={TOOLBOX_PATH}", 'CMD ["sh"]', f"LABEL {CONTENT_LABEL}={digest}"]
        if reaper is not None:
            changes.append(f"LABEL {REAPER_LABEL}={REAPER_PATH}")
        return importer(tar_path, ref, changes)


def demo_app_source() -> str:
    return _data_text("demo_app.py")


def _python_digest(debs: Sequence[Path]) -> str:
    # fetch_debs checked each file against apt's sha256: the versioned names identify them.
    return content_digest("python", _builder_source(), demo_app_source(), *(d.name for d in debs))


def python_digest(user: str | None = None) -> str:
    """What the demo image would be built from (fetches the packages once if not cached)."""
    return content_digest(_python_digest(fetch_debs(PYTHON_PACKAGES)), user or "")


def _strip_to_distroless(root: Path) -> None:
    # Package postinst scripts never run, so helpers such as update-ca-certificates (a shell
    # script) would be dead weight; a distroless image has no program but the interpreter.
    for folder in _BIN_DIRS:
        for entry in sorted((root / folder).glob("*")):
            if str(entry.relative_to(root)) in _PYTHON_BINARIES:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    for folder in _DROPPED_DIRS:
        shutil.rmtree(root / folder, ignore_errors=True)
    for doc in (root / "usr/share/doc").glob("*/*"):
        if doc.name != "copyright" and (doc.is_file() or doc.is_symlink()):
            doc.unlink()
    shells = [p for p in root.rglob("*") if p.name in SHELL_NAMES]
    if shells:
        raise ImageBuildError(f"a shell slipped into the python image: {shells[0]}",
                              "extend _strip_to_distroless in distrodebug/images.py")


def _write(path: Path, content: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)


def python_rootfs(tar_path: Path, workdir: Path) -> str:
    """Debian 12 packages -> a shell-less python3.11 root filesystem tar; returns its digest."""
    debs = fetch_debs(PYTHON_PACKAGES)
    root = workdir / "rootfs"
    root.mkdir(parents=True)
    for deb in debs:
        _dpkg_extract(deb, root)
    _strip_to_distroless(root)
    (root / "usr/bin/python3").symlink_to("python3.11")
    # What ca-certificates' postinst would have produced: one bundle of the Mozilla roots.
    certs = sorted((root / "usr/share/ca-certificates").rglob("*.crt"))
    bundle = root / "etc/ssl/certs/ca-certificates.crt"
    bundle.parent.mkdir(parents=True, exist_ok=True)
    with bundle.open("wb") as out:
        for cert in certs:
            out.write(cert.read_bytes().rstrip(b"\n") + b"\n")
    for name, content in passwd_files("/sbin/nologin").items():
        _write(root / name, content)
    _write(root / "etc/os-release",
           'PRETTY_NAME="Distroless"\nNAME="Debian GNU/Linux"\nID="debian"\nVERSION_ID="12"\n'
           'HOME_URL="https://github.com/GoogleContainerTools/distroless"\n')
    _write(root / "app/app.py", demo_app_source())
    for folder, mode in (("tmp", 0o1777), ("root", 0o700), ("home/nonroot", 0o700)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder).chmod(mode)
    with RootfsTar(tar_path, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.tree(root, owners={"home/nonroot": _NONROOT_UID})
    return _python_digest(debs)


def build_python_image(importer: Importer, ref: str = DEMO_REF, user: str | None = None) -> str:
    """Build the distroless-style python demo image (no shell); returns the image id."""
    with tempfile.TemporaryDirectory(prefix="distrodebug-python-") as tmp:
        tar_path = Path(tmp) / "rootfs.tar"
        digest = content_digest(python_rootfs(tar_path, Path(tmp)), user or "")
        changes = [
            f'ENTRYPOINT ["{PYTHON_ENTRYPOINT}"]', 'CMD ["app.py"]', "WORKDIR /app",
            "EXPOSE 8080", "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
            "ENV LANG=C.UTF-8", f"LABEL {CONTENT_LABEL}={digest}",
        ]
        if user:
            changes.append(f"USER {user}")
        return importer(tar_path, ref, changes)
