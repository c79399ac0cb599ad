"""The toolbox catalog and tools on demand, on the real engine: each image builds offline once per
content digest, its README's size holds, and its tools work after the chroot into the shell-less
Python target (whose libraries are not the toolbox's concern)."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from distrodebug.toolbox import catalog
from tests.fixtures.engine import changes

ROOT = Path(__file__).resolve().parents[2]
_lock = threading.Lock()


def built(name: str) -> str:
    """The catalog image `name`, built once per content digest (later runs reuse it)."""
    from distrodebug.runtimes import docker_runtime

    with _lock:
        return catalog.ensure(catalog.lookup(name), docker_runtime(), lambda _: None).ref


def readme_size(name: str) -> float:
    text = (ROOT / "sidecars" / name / "README.md").read_text()
    found = re.search(r"\*\*Size:\*\* about ([\d.]+) MB", text)
    assert found, f"sidecars/{name}/README.md states no size"
    return float(found[1])


@pytest.mark.parametrize("name", ["busybox", "net", "trace", "python"])
def test_catalog_image_builds_offline_and_its_readme_size_holds(engine: Any, name: str) -> None:
    ref = built(name)
    size = engine.images.get(ref).attrs["Size"] / 1e6
    stated = readme_size(name)
    assert 0.8 * stated <= size <= 1.15 * stated, f"{ref} is {size:.1f} MB, README says {stated}"


def serving(make_container: Any, python_image: str, **kwargs: Any) -> Any:
    app = make_container(python_image, **kwargs)
    deadline = time.monotonic() + 20
    while "listening" not in app.logs().decode() and time.monotonic() < deadline:
        time.sleep(0.1)
    return app


def test_with_strace_traces_the_python_target_through_the_chroot(
        dd: Any, make_container: Any, python_image: str, no_leftovers: None) -> None:
    app = serving(make_container, python_image, user="65532")
    script = ("timeout 4 strace -f -p 1 -e trace=accept4,recvfrom,sendto 2>&1 & sleep 1.5; "
              "wget -qO- http://127.0.0.1:8080/healthz; wait; ls /app; echo root=$DISTRODEBUG_ROOT")
    ran = dd("exec", app.name, "--with", "strace", "--", "sh", "-c", script, timeout=300)
    assert ran.code == 0, ran.err
    assert "accept4(" in ran.out and 'recvfrom(' in ran.out and "GET /healthz" in ran.out
    assert "app.py" in ran.out and "root=/" in ran.out  # the target's root: it was a chroot
    assert changes(app) == []
    again = dd("exec", app.name, "--with", "strace", "--", "strace", "-V", timeout=120)
    assert again.code == 0 and "reusing" in again.err, again.err


def test_net_toolbox_curl_and_tcpdump_see_the_targets_socket(
        dd: Any, make_container: Any, python_image: str, no_leftovers: None) -> None:
    app = serving(make_container, python_image)
    image = built("net")
    # The capture goes to the sidecar's /tmp ($DISTRODEBUG_TOOLS), never into the target.
    script = ("C=$DISTRODEBUG_TOOLS/tmp/cap; tcpdump -i lo -n -c 4 -A tcp port 8080 > $C 2>&1 & "
              "sleep 1.5; curl -sS http://127.0.0.1:8080/healthz; sleep 1; kill %1 2>/dev/null; "
              "wait; cat $C; ss -ltn; \"$DISTRODEBUG_TOOLS/usr/local/bin/nc\" -h 2>&1 | head -1")
    ran = dd("exec", app.name, "--image", image, "--", "sh", "-c", script, timeout=120)
    assert ran.code == 0, ran.err
    assert ran.out.startswith("ok\n")
    assert "127.0.0.1.8080" in ran.out and "packets captured" in ran.out
    assert "0.0.0.0:8080" in ran.out  # ss from iproute2
    assert "OpenBSD netcat" in ran.out  # the real nc, by its path inside `sh -c`
    # Named directly, the real tool wins over busybox's applet of the same name.
    direct = dd("exec", app.name, "--image", image, "--", "ip", "-br", "addr", timeout=120)
    assert direct.code == 0 and "UNKNOWN" in direct.out and "127.0.0.1/8" in direct.out, direct.err


def test_python_toolbox_py_spy_dumps_the_target(
        dd: Any, make_container: Any, python_image: str, no_leftovers: None) -> None:
    app = serving(make_container, python_image)
    ran = dd("exec", app.name, "--image", built("python"), "--", "sh", "-c",
             "py-spy dump --pid 1; python3 -c 'import sys; print(sys.prefix)'", timeout=120)
    assert ran.code == 0, ran.err
    assert "serve_forever" in ran.out and "/opt/distrodebug/usr" in ran.out


def test_with_an_unknown_package_is_a_usage_error(dd: Any, make_container: Any,
                                                   python_image: str) -> None:
    app = serving(make_container, python_image)
    ran = dd("exec", app.name, "--with", "no-such-package-dd", "--", "true")
    assert ran.code == 2 and "Traceback" not in ran.err
    assert "no-such-package-dd" in ran.err


def test_toolbox_list_shows_built_images(dd: Any) -> None:
    built("trace")
    ran = dd("toolbox", "list", "-o", "json")
    assert ran.code == 0, ran.err
    assert '"name": "trace"' in ran.out and '"strace"' in ran.out


def test_toolbox_build_command_reuses_by_content_and_refuses_unknown_names(dd: Any) -> None:
    built("trace")
    ran = dd("toolbox", "build", "trace", timeout=300)
    assert ran.code == 0, ran.err
    assert "reused distrodebug/trace:1" in ran.err and "gdb, lsof, ltrace, strace" in ran.err
    unknown = dd("toolbox", "build", "no-such-box")
    assert unknown.code == 2 and "busybox, net, trace, python" in unknown.err, unknown.err
