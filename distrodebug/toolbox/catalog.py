"""The toolbox catalog (busybox, net, trace, python) and tools on demand (``--with``), built offline.

Every toolbox is busybox (the session's shell, the applets, the subreaper) plus Debian packages
and their dependency closure from this machine's apt sources, laid out by
:mod:`distrodebug.toolbox.layout` so the tools run after the chroot into any target. Images are
tagged by content: the sorted packages with their versions, the extras' checksums and the
builder's own source. Building again with the same apt lists reuses the image.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from distrodebug.errors import UsageError
from distrodebug.model import ImageInfo
from distrodebug.toolbox import (
    CONTENT_LABEL,
    REAPER_LABEL,
    REAPER_PATH,
    TOOLBOX_PATH,
    ImageBuildError,
    Importer,
    build_reaper,
    build_toolbox,
    cache_dir,
    compile_static,
    content_digest,
    fetch_debs,
    file_digest,
    find_static_busybox,
    image_tag_for,
    layout,
    needs_build,
    toolbox_digest,
)
from distrodebug.toolbox import TOOLBOX_REF as BUSYBOX_REF
from distrodebug.toolbox import debs as apt

#: Image labels: what a toolbox holds, for `toolbox list`.
NAME_LABEL = "io.distrodebug.toolbox"
TOOLS_LABEL = "io.distrodebug.tools"
PACKAGES_LABEL = "io.distrodebug.packages"


@dataclass(frozen=True)
class Wheel:
    """A static program shipped in a PyPI wheel (py-spy), pinned by version and checksum."""

    project: str
    version: str
    sha256: str
    member: str
    name: str


@dataclass(frozen=True)
class Toolbox:
    name: str
    about: str
    packages: tuple[str, ...] = ()
    #: The programs put on PATH (the packages' other programs stay in the prefix).
    tools: tuple[str, ...] = ()
    #: Extra names in the prefix: name -> the program it stands for (set up by postinst scripts).
    aliases: Mapping[str, str] = field(default_factory=dict)
    wheels: tuple[Wheel, ...] = ()
    #: Tools that locate their own files from argv[0] (python's standard library).
    real_argv0: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        return BUSYBOX_REF if self.name == "busybox" else f"distrodebug/{self.name}:1"


PY_SPY = Wheel("py-spy", "0.4.3",
               "8a4277225f470d394a85cca0cdd944bef87f0097b6f20150a6dd3ac2e92806b8",
               "py_spy-0.4.3.data/scripts/py-spy", "py-spy")

CATALOG: dict[str, Toolbox] = {
    box.name: box for box in (
        Toolbox("busybox", "a static busybox and the subreaper (the default)"),
        Toolbox("net", "curl, dig, tcpdump, ss and ip, nc, openssl",
                ("curl", "bind9-dnsutils", "tcpdump", "iproute2", "netcat-openbsd", "openssl"),
                ("curl", "dig", "nslookup", "host", "tcpdump", "ss", "ip", "nc", "openssl"),
                {"bin/nc": "nc.openbsd"}),
        Toolbox("trace", "strace, ltrace, gdb, lsof",
                ("strace", "ltrace", "gdb", "lsof"), ("strace", "ltrace", "gdb", "lsof")),
        Toolbox("python", "py-spy, and a Python 3.11 to run scripts",
                ("python3.11-minimal", "libpython3.11-stdlib"), ("python3", "python3.11"),
                {"usr/bin/python3": "python3.11"}, (PY_SPY,), ("python3", "python3.11")),
    )
}


def lookup(name: str) -> Toolbox:
    try:
        return CATALOG[name]
    except KeyError:
        raise UsageError(f"There is no toolbox named '{name}'.",
                         f"Choose one of {', '.join(CATALOG)}, or add packages to a session "
                         "with --with PACKAGE,...") from None


def on_demand(packages: tuple[str, ...]) -> Toolbox:
    """A toolbox of these packages; its tools are the programs the named packages install."""
    return Toolbox("with", "tools on demand: " + ", ".join(packages), packages)


@dataclass(frozen=True)
class Built:
    ref: str
    tag: str
    reused: bool
    tools: tuple[str, ...]
    packages: tuple[str, ...]


class ImageStore(Protocol):
    """Where toolbox images go; the Docker runtime is one."""

    def import_image(self, tar_path: str | os.PathLike[str], ref: str, changes: list[str]) -> str:
        ...

    def image_labels(self, ref: str) -> dict[str, str] | None: ...

    def tag_image(self, image: str, ref: str) -> None: ...


def _builder_parts() -> list[bytes]:
    here = Path(__file__).parent
    return [(here / name).read_bytes() for name in ("catalog.py", "layout.py", "debs.py")] + [
        (here.parent / "data" / "launcher.c").read_bytes()]


def fetch_wheel(wheel: Wheel) -> Path:
    """The wheel, downloaded once with pip into the cache and checked against its sha256."""
    folder = cache_dir() / "wheels"
    folder.mkdir(parents=True, exist_ok=True)
    for found in folder.glob(f"{wheel.project.replace('-', '_')}-{wheel.version}-*.whl"):
        if file_digest(found) == wheel.sha256:
            return found
    hint = (f"pip downloads {wheel.project} {wheel.version} from PyPI once; without it, put the "
            f"wheel in {folder}")
    argv = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
            "--platform", "manylinux_2_5_x86_64", "--implementation", "py", "--python-version", "3",
            "-d", str(folder), f"{wheel.project}=={wheel.version}", "-q"]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ImageBuildError(f"cannot download {wheel.project}: "
                              + " ".join(done.stderr.strip().splitlines()[-2:]), hint)
    for found in folder.glob(f"{wheel.project.replace('-', '_')}-{wheel.version}-*.whl"):
        if file_digest(found) == wheel.sha256:
            return found
    raise ImageBuildError(f"the downloaded {wheel.project} wheel is not the pinned one", hint)


def _tools_of(box: Toolbox, debs: Mapping[str, Path]) -> tuple[str, ...]:
    if box.tools:
        return box.tools
    # On demand: every program the named packages install in a bin folder.
    names = set()
    for package in box.packages:
        for member in apt.members(debs[package]):
            folder, _, name = member.removeprefix("./").rpartition("/")
            if folder in layout.TOOL_DIRS and name:
                names.add(name)
    return tuple(sorted(names))


def plan(box: Toolbox) -> tuple[str, tuple[apt.Package, ...], tuple[Path, ...]]:
    """The content digest of `box` as this machine would build it, its packages and wheels."""
    if box.name == "busybox":
        return toolbox_digest(), (), ()
    packages = apt.closure(box.packages)
    wheels = tuple(fetch_wheel(w) for w in box.wheels)
    digest = content_digest(box.name, *_builder_parts(), *(str(p) for p in packages),
                            *(w.sha256 for w in box.wheels), *box.tools,
                            *(f"{k}={v}" for k, v in sorted(box.aliases.items())),
                            *box.real_argv0)
    return digest, packages, wheels


def ensure(box: Toolbox, store: ImageStore, notice: Callable[[str], None],
           ref: str | None = None, force: bool = False) -> Built:
    """Build `box` unless an image with its content digest exists; tag it `ref` too."""
    digest, packages, wheels = plan(box)
    tag = image_tag_for(box.name, digest)
    names = tuple(p.name for p in packages)
    existing = store.image_labels(tag)
    reused = not force and not needs_build(existing, digest)
    if reused:
        assert existing is not None
        tools = tuple(existing.get(TOOLS_LABEL, "").split(","))
    else:
        notice(f"distrodebug: building {tag} offline from {len(packages)} Debian packages ...")
        tools = _build(box, digest, tag, packages, wheels, store.import_image)
    target = ref or (tag if box.name == "with" else box.ref)
    if target != tag:
        store.tag_image(tag, target)
    return Built(target, tag, reused, tools, names)


def _build(box: Toolbox, digest: str, tag: str, packages: tuple[apt.Package, ...],
           wheels: tuple[Path, ...], importer: Importer) -> tuple[str, ...]:
    if box.name == "busybox":
        build_toolbox(importer, tag)
        return ()
    busybox = find_static_busybox()
    files = fetch_debs(str(p) for p in packages)
    by_name = {p.name: f for p, f in zip(packages, sorted(files, key=_deb_name), strict=True)}
    with tempfile.TemporaryDirectory(prefix="distrodebug-toolbox-") as tmp:
        work = Path(tmp)
        tree = work / "tree"
        tree.mkdir()
        for deb in files:
            apt.unpack(deb, tree)
        layout.trim(tree)
        layout.relativize_links(tree)
        for alias, program in box.aliases.items():
            link = tree / alias
            if not link.exists():
                link.symlink_to(program)
        static = {}
        for wheel, path in zip(box.wheels, wheels, strict=True):
            with zipfile.ZipFile(path) as archive:
                static[wheel.name] = work / wheel.name
                static[wheel.name].write_bytes(archive.read(wheel.member))
        tools = tuple(t for t in _tools_of(box, by_name)
                      if t not in static and layout.is_elf(layout.find_tool(tree, t)))
        reaper = build_reaper(work)
        launcher = compile_static(Path(__file__).parent.parent / "data" / "launcher.c",
                                  work / "distrodebug-launch")
        tar_path = work / "rootfs.tar"
        on_path = layout.write_rootfs(tar_path, busybox=busybox, reaper=reaper, launcher=launcher,
                                      contents=layout.Contents(tree, tools, static,
                                                                        box.real_argv0))
        changes = [f"ENV PATH={TOOLBOX_PATH}", 'CMD ["sh"]', f"LABEL {CONTENT_LABEL}={digest}",
                   f"LABEL {NAME_LABEL}={box.name}", f"LABEL {TOOLS_LABEL}={','.join(on_path)}",
                   f"LABEL {PACKAGES_LABEL}={','.join(box.packages)}"]
        if reaper is not None:
            changes.append(f"LABEL {REAPER_LABEL}={REAPER_PATH}")
        importer(tar_path, tag, changes)
    return tuple(on_path)


def _deb_name(path: Path) -> str:
    return path.name.split("_")[0]


class ImageLister(Protocol):
    def images_labelled(self, label: str) -> list[tuple[ImageInfo, int]]: ...


@dataclass(frozen=True)
class Row:
    """One built toolbox, for `toolbox list`."""

    name: str
    refs: tuple[str, ...]
    size: int
    tools: tuple[str, ...]
    packages: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "refs": list(self.refs), "size": self.size,
                "tools": list(self.tools), "packages": list(self.packages)}


def listing(store: ImageLister) -> list[Row]:
    """The toolboxes on the engine: the catalog's and those built for --with."""
    rows = []
    for image, size in store.images_labelled(CONTENT_LABEL):
        refs = tuple(sorted(r for r in image.ref.split(",") if r))
        repos = {r.rpartition(":")[0] for r in refs}
        name = image.labels.get(NAME_LABEL) or ("busybox" if BUSYBOX_REF.split(":")[0] in repos
                                                else "")
        if not name:
            continue  # the demo app, test targets: ours, but not toolboxes
        tools = tuple(t for t in image.labels.get(TOOLS_LABEL, "").split(",") if t)
        if name == "busybox":
            tools = ("busybox applets", "distrodebug-reaper")
        packages = tuple(p for p in image.labels.get(PACKAGES_LABEL, "").split(",") if p)
        rows.append(Row(name, refs, size, tools, packages))
    return sorted(rows, key=lambda row: (row.name != "busybox", row.name, row.refs))


def write_tar(box: Toolbox, out: Path) -> tuple[str, ...]:
    """The root filesystem of `box` as a tar file, without an engine (the Dockerfiles use this)."""
    digest, packages, wheels = plan(box)

    def keep(tar_path: Path, ref: str, changes: list[str]) -> str:
        import shutil

        shutil.copyfile(tar_path, out)
        return ref

    return _build(box, digest, "file", packages, wheels, keep)
