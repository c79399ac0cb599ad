"""`distrodebug image` read from the engine's layer store gives the report `docker save` gives.

The store route (distrodebug/image/store.py) reads the directories overlay2 unpacked each layer
into; the archive route reads `docker save`. Both see one image here, loaded offline, whose layers
use every trick the store writes differently from a tar: whiteouts (character devices 0/0),
an opaque directory (an xattr), hard links (one inode), symlinks to tools, setuid and
world-writable modes, a key deleted by a later layer. Podman keeps another layout: there the
store route is refused in words and `auto` reads the archive.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.engine import lane
from tests.fixtures.layered import (
    FAKE_KEY,
    Entry,
    Layer,
    directory,
    file,
    opaque,
    symlink,
    tool,
    whiteout,
)

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("no_leftovers")]

PASSWD = b"root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532::/home/nonroot:/sbin/nologin\n"

TRICKS = [
    Layer("COPY rootfs / # base", [
        directory("etc"), file("etc/passwd", PASSWD), directory("tmp", 0o1777), tool("app"),
        directory("opt"), directory("opt/tools"), tool("opt/tools/sh"), tool("opt/tools/curl"),
        directory("usr"), directory("usr/bin"), tool("usr/bin/busybox"),
        Entry("usr/bin/wget", kind="hardlink", link="usr/bin/busybox", mode=0o755),
        symlink("usr/bin/ash", "busybox"), tool("usr/bin/helper", 0o4755),
        directory("var"), directory("var/drop", 0o777), directory("src"),
        file("src/deploy.pem", FAKE_KEY), directory("src/.git"), file("src/.git/HEAD", b"ref"),
    ]),
    # Each entry's parent directories are in its layer, as in layers a build makes: overlayfs
    # needs them on disk, and docker save replays the tar the layer was loaded from.
    Layer("RUN cleanup", [
        directory("opt"), directory("src"), directory("usr"),
        directory("opt/tools"), opaque("opt/tools"), tool("opt/tools/app-helper"),
        whiteout("usr/bin/busybox"), whiteout("src/deploy.pem"),
        directory("usr/bin"), tool("usr/bin/gcc-12"), file(".env", b"X=1"),
        directory("home"), directory("home/nonroot"), directory("home/nonroot/.aws"),
        file("home/nonroot/.aws/credentials", b"[default]\naws_access_key_id = AKIAFAKE\n"),
    ]),
    Layer("USER 65532", []),
]


def report(dd: Any, ref: str, read: str) -> dict[str, Any]:
    ran = dd("image", ref, "-o", "json", "--read", read)
    assert ran.code == 0, ran.err
    data: dict[str, Any] = json.loads(ran.out)
    return data


def comparable(data: dict[str, Any]) -> dict[str, Any]:
    """The report without what differs by route: time, route, and a layer's size (the tar's bytes
    from `docker save`, the engine's own count from the store)."""
    layers = [{k: v for k, v in layer.items() if k != "size"} for layer in data["layers"]]
    return {**{k: v for k, v in data.items() if k not in ("seconds", "read_from", "layers")},
            "layers": layers}


def test_store_and_archive_routes_agree(dd: Any, loaded: Callable[..., str]) -> None:
    ref = loaded(TRICKS)
    saved = report(dd, ref, "save")
    assert saved["read_from"] == "docker save"
    found = {f["rule"]: sorted(i["path"] for i in f["items"]) for f in saved["findings"]}
    # What the tricks leave: the opaque directory hid sh and curl, the whiteout took busybox, so
    # its hard link wget and the symlink ash (now dangling) are what is left of it.
    assert "shell" not in found
    assert "/opt/tools/sh" not in json.dumps(found) and "/usr/bin/ash" not in json.dumps(found)
    assert found["private-key"] == ["/src/deploy.pem"] and found["setuid"] == ["/usr/bin/helper"]
    assert found["build-tool"] == ["/usr/bin/gcc-12"] and found["world-writable"] == ["/var/drop"]
    assert found["downloader"] == ["/usr/bin/wget"] and found["token-file"] == ["/.env"]
    assert found["cloud-credentials"] == ["/home/nonroot/.aws/credentials"]
    if lane() == "podman":
        # Podman's containers/storage is not Docker's layer store: refused in words, and auto
        # reads the archive (the difference lives in DockerRuntime.layer_store).
        ran = dd("image", ref, "--read", "store")
        assert ran.code == 125 and "layer store" in ran.err and "Traceback" not in ran.err
        assert report(dd, ref, "auto")["read_from"] == "docker save"
        return
    stored = report(dd, ref, "store")
    assert stored["read_from"] == "layer store"
    assert comparable(stored) == comparable(saved)
    assert report(dd, ref, "auto")["read_from"] == "layer store"


def test_store_route_follows_no_link_and_opens_no_fifo(dd: Any, loaded: Callable[..., str],
                                                       tmp_path: Path) -> None:
    """A layer's symlink named like a key points at a host file that holds one, and a FIFO is
    named like a secret: reading the store as root must not follow the one nor block on the
    other (the archive route never could; on Podman auto is that route)."""
    host_key = tmp_path / "host-key"
    host_key.write_bytes(FAKE_KEY)
    ref = loaded([Layer("COPY rootfs / # base", [
        directory("etc"), file("etc/passwd", PASSWD), tool("app"), directory("keys"),
        symlink("keys/id_rsa", str(host_key)), symlink("keys/server.pem", "../../" * 20 + str(host_key)),
        Entry("keys/.env", kind="fifo"), Entry("etc/passwd.fifo", kind="fifo"),
    ])])
    found = report(dd, ref, "auto")
    assert found["read_from"] == ("docker save" if lane() == "podman" else "layer store")
    assert "private-key" not in {f["rule"] for f in found["findings"]}, found["findings"]
    assert comparable(found) == comparable(report(dd, ref, "save"))


def test_read_option_is_checked(dd: Any) -> None:
    ran = dd("image", "distrodebug-test/never-built:1", "--read", "disk")
    assert ran.code == 2 and "auto, store, save" in ran.err and "Traceback" not in ran.err
