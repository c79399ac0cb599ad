"""`cp` against hostile and awkward targets (issue 11: items 2, 3, 4, 16, 18).

Every test runs the real CLI against the real engine; the targets are the offline toolbox image
(it has a shell, so the test can plant files) run as root or as uid 65532, and the distroless
Python app.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.engine import changes, engine_differs

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("no_leftovers")]


def _target(make_container: Any, toolbox: str, setup: str, **kwargs: Any) -> Any:
    return make_container(toolbox, entrypoint=["/bin/sh", "-c", f"{setup} && exec sleep 1000"],
                          **kwargs)


def _run(target: Any, command: str) -> str:
    code, out = target.exec_run(["/bin/sh", "-c", command], user="0")
    assert code == 0, out
    return out.decode("utf-8", "surrogateescape")


def test_copy_into_existing_directory_merges(dd: Any, make_container: Any, toolbox: str,
                                             tmp_path: Path) -> None:
    target = _target(make_container, toolbox,
                     "mkdir -p /srv/conf/sub && echo db > /srv/conf/important.db && "
                     "echo old > /srv/conf/other.cfg && echo keep > /srv/conf/sub/keep")
    conf = tmp_path / "conf"
    (conf / "sub").mkdir(parents=True)
    (conf / "other.cfg").write_text("new\n")
    (conf / "sub" / "added").write_text("added\n")
    ran = dd("cp", str(conf), f"{target.name}:/srv/")
    assert ran.code == 0, ran.err
    listing = _run(target, "cd /srv/conf && find . -type f | sort && cat other.cfg important.db")
    assert listing.split() == ["./important.db", "./other.cfg", "./sub/added", "./sub/keep",
                               "new", "db"]
    # docker cp: a directory copied onto an existing directory of the same name lands inside it.
    ran = dd("cp", str(conf), f"{target.name}:/srv/conf")
    assert ran.code == 0, ran.err
    assert _run(target, "cat /srv/conf/conf/other.cfg /srv/conf/important.db").split() == ["new", "db"]


def test_symlink_cannot_lead_root_writes_out_of_the_users_reach(
        dd: Any, make_container: Any, toolbox: str, tmp_path: Path) -> None:
    target = _target(make_container, toolbox, "mkdir -p /tmp/w && ln -s /etc /tmp/w/link",
                     user="65532")
    before = _run(target, "ls -ln /etc/passwd; md5sum /etc/passwd")
    evil = tmp_path / "passwd"
    evil.write_text("root::0:0::/root:/bin/sh\n")
    for dest in ("/tmp/w/link/passwd", "/tmp/w/link/", "/tmp/w/link"):
        ran = dd("cp", str(evil), f"{target.name}:{dest}")
        assert ran.code != 0, (dest, ran.err)
        assert "Traceback" not in ran.err
    assert _run(target, "ls -ln /etc/passwd; md5sum /etc/passwd") == before
    # The same copy into a directory the user owns works, and the file is the user's.
    ran = dd("cp", str(evil), f"{target.name}:/tmp/w/")
    assert ran.code == 0, ran.err
    assert " 65532 " in _run(target, "ls -ln /tmp/w/passwd")


def test_large_copy_into_unwritable_directory_fails_fast(dd: Any, make_container: Any,
                                                         python_image: str, tmp_path: Path) -> None:
    target = make_container(python_image, user="65532")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(1 << 20) * 4)
    started = time.monotonic()
    ran = dd("cp", str(big), f"{target.name}:/etc/", timeout=90)
    assert ran.code == 125, ran.err
    assert "may not write to '/etc'" in ran.err
    assert time.monotonic() - started < 60


def test_copy_corners(dd: Any, make_container: Any, toolbox: str, tmp_path: Path) -> None:
    target = _target(make_container, toolbox,
                     "mkdir -p /x && printf caf > \"$(printf '/x/caf\\351')\"")
    work = tmp_path / "work"
    work.mkdir(mode=0o755)
    (work / "a.txt").write_text("a\n")
    # '.' copies the directory's contents, docker cp style, and reports success.
    ran = dd("cp", ".", f"{target.name}:/dot", cwd=str(work))
    assert ran.code == 0, ran.err
    assert _run(target, "stat -c %a /dot; cat /dot/a.txt").split() == ["755", "a"]
    # A trailing slash names a directory: a file is not created under that name.
    ran = dd("cp", str(work / "a.txt"), f"{target.name}:/tmp/new/")
    assert ran.code != 0 and "does not exist" in ran.err, ran.err
    assert _run(target, "test ! -e /tmp/new && echo absent").strip() == "absent"
    # Non-UTF-8 names travel both ways.
    out = tmp_path / "out"
    out.mkdir()
    ran = dd("cp", f"{target.name}:" + os.fsdecode(b"/x/caf\xe9"), str(out))
    assert ran.code == 0, ran.err
    assert (out / os.fsdecode(b"caf\xe9")).read_text() == "caf"
    ran = dd("cp", str(out / os.fsdecode(b"caf\xe9")), f"{target.name}:" + os.fsdecode(b"/x/b\xe9"))
    assert ran.code == 0, ran.err
    assert _run(target, "cat /x/b*") == "caf"
    # The whole root comes out (without /proc and /sys).
    ran = dd("cp", f"{target.name}:/", str(tmp_path / "root"))
    assert ran.code == 0, ran.err
    assert (tmp_path / "root" / "bin" / "busybox").exists()
    assert (tmp_path / "root" / "x").is_dir() and not (tmp_path / "root" / "proc").exists()


@engine_differs("podman", "it mounts a writable tmpfs on /tmp of a read-only container "
                "(read_only_tmpfs), so a copy into /tmp succeeds there")
def test_read_only_root_says_read_only_to_a_non_root_target(dd: Any, make_container: Any,
                                                            python_image: str, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    target = make_container(python_image, user="65532", read_only=True)
    for dest in ("/tmp/", "/etc/"):  # /etc is not the user's either: read-only is the news
        ran = dd("cp", str(tmp_path / "f"), f"{target.name}:{dest}")
        assert ran.code == 125 and "read-only" in ran.err, ran.err
    assert changes(target) == []


def test_names_from_the_target_cannot_drive_the_terminal(dd: Any, make_container: Any,
                                                         toolbox: str, tmp_path: Path) -> None:
    """Item 8: cp's refusals named the target's files raw, so a FIFO named with ESC[2K could
    erase the line above and retitle the terminal."""
    target = _target(make_container, toolbox,
                     "mkdir /h && echo a > /h/plain && mkfifo \"$(printf '/h/f\\033[1A\\033[2Kx')\" "
                     "&& mknod \"$(printf '/h/d\\033]0;owned\\007')\" c 1 3")
    ran = dd("cp", f"{target.name}:/h", str(tmp_path / "out"))
    assert ran.code != 0 and "not copied" in ran.err, ran.err
    assert "\x1b" not in ran.err and "\x07" not in ran.err, ran.err
    assert "f\\x1b[1A\\x1b[2Kx" in ran.err  # shown, escaped
    assert "link" not in ran.err  # no link was refused: the hint spoke of links all the same
    assert (tmp_path / "out" / "plain").read_text() == "a\n"


@engine_differs("podman", "it reads the job sidecars while they idle, and the runtime starts no warm "
                "sidecars on Podman (DockerRuntime.start_sidecar)")
def test_job_sidecars_keep_only_what_the_job_needs(dd: Any, engine: Any, make_container: Any,
                                                   toolbox: str, python_image: str,
                                                   tmp_path: Path) -> None:
    """Item 18: cp and dump sidecars ran with Docker's default capabilities (NET_RAW, MKNOD,
    SETUID...), without no-new-privileges or limits. What the kernel says, not only the spec."""
    from tests.docker.test_warm import warm_of

    root = _target(make_container, toolbox, "true")
    nonroot = make_container(python_image, user="65532")
    (tmp_path / "f").write_text("x")
    for args in (("cp", f"{root.name}:/etc/hostname", str(tmp_path / "h")),
                 ("cp", str(tmp_path / "f"), f"{root.name}:/tmp/"),
                 ("cp", str(tmp_path / "f"), f"{nonroot.name}:/tmp/"),
                 ("dump", nonroot.name, "--path", "/app", "-f", str(tmp_path / "b.tar"))):
        ran = dd(*args)
        assert ran.code == 0, (args, ran.err)
    bits = {"CHOWN": 0, "DAC_OVERRIDE": 1, "DAC_READ_SEARCH": 2, "FOWNER": 3, "SETGID": 6,
            "SETUID": 7, "SYS_CHROOT": 18, "SYS_PTRACE": 19}
    read = {"SYS_CHROOT", "SYS_PTRACE", "DAC_READ_SEARCH"}
    want = {root.name: [read, {"SYS_CHROOT", "SYS_PTRACE", "DAC_OVERRIDE", "FOWNER", "CHOWN"}],
            nonroot.name: [read, {"SETUID", "SETGID"}]}
    for target in (root, nonroot):
        seen = []
        for sidecar in warm_of(engine, target):
            host = sidecar.attrs["HostConfig"]
            # Dropped capabilities: the kernel's bounding set below (Docker's inspect says ALL,
            # Podman's lists the defaults it dropped).
            assert host["SecurityOpt"] == ["no-new-privileges"]
            assert host["PidsLimit"] == 256 and host["Memory"] == 256 << 20
            code, out = sidecar.exec_run(["cat", "/proc/self/status"])
            assert code == 0, out
            status = dict(line.split(":\t", 1) for line in out.decode().splitlines() if ":\t" in line)
            assert status["NoNewPrivs"].strip() == "1"
            effective = int(status["CapEff"], 16)
            assert int(status["CapBnd"], 16) == effective
            seen.append({name for name, bit in bits.items() if effective & (1 << bit)})
            assert effective == sum(1 << bits[name] for name in seen[-1]), hex(effective)
        assert sorted(seen, key=sorted) == sorted(want[target.name], key=sorted), target.name
