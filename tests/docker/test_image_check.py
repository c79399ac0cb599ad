"""`distrodebug image` on the real engine: images loaded offline, read as `docker save` sends them."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.fixtures.layered import (
    FAKE_KEY,
    Entry,
    Layer,
    directory,
    file,
    tool,
    whiteout,
)

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("no_leftovers")]

PASSWD = b"root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532::/home/nonroot:/sbin/nologin\n"
BASE = Layer("COPY rootfs / # base", [directory("etc"), file("etc/passwd", PASSWD),
                                      directory("tmp", 0o1777), tool("app")])


def report(dd: Any, ref: str, *args: str) -> tuple[int, dict[str, Any]]:
    ran = dd("image", ref, "-o", "json", *args)
    assert ran.code in (0, 1), ran.err
    return ran.code, json.loads(ran.out)


def rules_of(data: dict[str, Any]) -> dict[str, list[str]]:
    return {f["rule"]: [i["path"] for i in f["items"]] for f in data["findings"]}


def test_offline_distroless_targets_come_out_clean(dd: Any, static_nonroot_image: str,
                                                   static_image: str, python_image: str) -> None:
    code, data = report(dd, static_nonroot_image, "--fail-on", "info")
    assert (code, data["findings"], data["worst"]) == (0, [], None)
    assert data["engine"].split()[0] in ("Docker", "Podman")
    # The root variant and the demo image (run as 65532 by the demo, not by the image) differ
    # from it only in the user.
    for image in (static_image, python_image):
        code, data = report(dd, image, "--fail-on", "critical")
        assert code == 0 and rules_of(data) == {"root-user": ["USER"]}, data["findings"]


def test_bad_images_are_caught_and_fail_ci(dd: Any, loaded: Callable[..., str]) -> None:
    shell = loaded([BASE, Layer("COPY busybox /bin/", [
        directory("bin"), tool("bin/busybox"),
        Entry("bin/sh", kind="hardlink", link="bin/busybox", mode=0o755)])])
    code, data = report(dd, shell, "--fail-on", "high")
    assert code == 1 and rules_of(data)["shell"] == ["/bin/busybox", "/bin/sh"]

    setuid = loaded([BASE, Layer("COPY helper /usr/bin/", [directory("usr/bin"),
                                                            tool("usr/bin/helper", 0o4755)])])
    assert rules_of(report(dd, setuid)[1]) == {"setuid": ["/usr/bin/helper"]}

    key = loaded([BASE, Layer("COPY . /src", [directory("src"), file("src/deploy.pem", FAKE_KEY)]),
                  Layer("RUN rm /src/deploy.pem", [whiteout("src/deploy.pem")])])
    code, data = report(dd, key, "--fail-on", "critical")
    item = data["findings"][0]["items"][0]
    assert (code, data["findings"][0]["rule"], item["path"], item["layer"]) == (1, "private-key",
                                                                               "/src/deploy.pem", 2)
    assert "deleted in layer 3" in item["detail"] and "OPENSSH" not in json.dumps(data)

    root = loaded([BASE], user=None)
    assert rules_of(report(dd, root)[1]) == {"root-user": ["USER"]}

    single = loaded([BASE, Layer("/bin/sh -c apt-get install -y gcc make && make", [
        directory("usr/bin"), tool("usr/bin/gcc-12"), tool("usr/bin/make")])])
    code, data = report(dd, single, "--fail-on", "high")
    assert code == 1 and rules_of(data) == {"build-tool": ["/usr/bin/gcc-12", "/usr/bin/make"]}
    assert data["layers"][1]["instruction"] == "RUN apt-get install -y gcc make && make"


def test_text_report_escapes_hostile_names(dd: Any, loaded: Callable[..., str]) -> None:
    ref = loaded([BASE, Layer("RUN evil", [directory("bin"), tool("bin/sh"),
                                           file("app/.env\x1b]0;owned\x07", b"A=1")])])
    ran = dd("image", ref)
    assert ran.code == 0, ran.err
    assert "\x1b" not in ran.out + ran.err and "\\x1b]0;owned\\x07" in ran.out
    assert "[HIGH] a shell is left in the image" in ran.out and "verdict: not distroless" in ran.out


def test_missing_image_and_bad_level(dd: Any) -> None:
    ran = dd("image", "distrodebug-test/never-built:1")
    assert ran.code == 125 and "never pulls" in ran.err and "Traceback" not in ran.err
    ran = dd("image", "distrodebug-test/never-built:1", "--fail-on", "severe")
    assert ran.code == 2 and "info, low, medium, high, critical" in ran.err
