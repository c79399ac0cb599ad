"""`distrodebug exec` against real distroless-style targets on the real engine."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.engine import changes

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("no_leftovers")]


def test_ps_sees_target_and_stdout_is_only_data(dd: Any, make_container: Any,
                                                 static_image: str) -> None:
    target = make_container(static_image)
    ran = dd("exec", target.name, "--", "ps", "-o", "pid,args")
    assert ran.code == 0, ran.err
    lines = ran.out.splitlines()
    assert lines[0].split() == ["PID", "COMMAND"]
    assert any(line.split() == ["1", "/app"] for line in lines)
    assert "distrodebug:" not in ran.out


def test_exit_status_stdin_and_stderr(dd: Any, make_container: Any, static_image: str) -> None:
    target = make_container(static_image)
    ran = dd("exec", target.name, "--", "sh", "-c", "cat; echo oops >&2; exit 7",
             input="piped through\n")
    assert (ran.code, ran.out) == (7, "piped through\n")
    assert "oops" in ran.err


@pytest.mark.parametrize(("command", "code"), [(["nosuchcmd"], 127), (["/etc"], 126)])
def test_cannot_run(dd: Any, make_container: Any, static_image: str, command: list[str],
                    code: int) -> None:
    target = make_container(static_image)
    assert dd("exec", target.name, "--", *command).code == code


def test_nonroot_readonly_python_target(dd: Any, make_container: Any, python_image: str) -> None:
    target = make_container(python_image, user="65532", read_only=True)
    ran = dd("exec", target.name, "--", "sh", "-c",
             "id -u; grep ^Uid /proc/1/status; grep -q http.server /app/app.py && echo APP-READABLE; "
             # The app may still be starting: exec no longer takes long enough to hide that.
             "for i in $(seq 100); do netstat -ltn | grep -q :8080 && break; sleep 0.1; done; "
             "netstat -ltn; "
             "ls /bin/sh 2>&1 || true")
    assert ran.code == 0, ran.err
    assert "65532" in ran.out and "APP-READABLE" in ran.out
    assert ":8080" in ran.out
    assert "No such file" in ran.out  # the target has no shell of its own
    assert changes(target) == []


def test_user_flag_runs_as_target_uid_without_chroot(dd: Any, make_container: Any,
                                                     static_nonroot_image: str) -> None:
    target = make_container(static_nonroot_image)
    ran = dd("exec", "--user", "65532", target.name, "--", "sh", "-c",
             "id -u; pwd; ls; echo $DISTRODEBUG_ROOT")
    assert ran.code == 0, ran.err
    assert ran.out.split() == ["65532", "/proc/1/root", "app", "dev", "etc", "proc", "sys", "tmp",
                               "/proc/1/root"] or "app" in ran.out


def test_ipc_joined_only_when_shareable(dd: Any, make_container: Any, static_image: str) -> None:
    shared = make_container(static_image, ipc_mode="shareable")
    private = make_container(static_image, ipc_mode="private")  # Podman defaults to shareable
    same = "readlink /proc/1/ns/ipc; readlink /proc/self/ns/ipc"
    out = dd("exec", shared.name, "--", "sh", "-c", same).out.split()
    assert len(out) == 2 and out[0] == out[1]
    out = dd("exec", private.name, "--", "sh", "-c", same).out.split()
    assert len(out) == 2 and out[0] != out[1]


def test_target_filesystem_untouched(dd: Any, make_container: Any, static_image: str) -> None:
    target = make_container(static_image)
    before = target.diff()
    assert dd("exec", target.name, "--", "ls", "/").code == 0
    assert target.diff() == before


def test_name_prefix_and_scheme(dd: Any, make_container: Any, static_image: str) -> None:
    target = make_container(static_image)
    assert dd("exec", target.id[:12], "--", "true").code == 0
    assert dd("exec", f"docker://{target.name}", "--", "true").code == 0


def test_image_target_runs_no_entrypoint(dd: Any, python_image: str, engine: Any) -> None:
    ran = dd("exec", "--image-target", python_image, "sh", "-c", "ps -o args; ls /app")
    assert ran.code == 0, ran.err
    assert "app.py" in ran.out and "python" not in ran.out.split("app.py")[0].lower()
