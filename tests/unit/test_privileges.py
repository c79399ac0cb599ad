"""How much a sidecar may do: sessions keep what they need, cp and dump jobs far less."""

from __future__ import annotations

import dataclasses

import pytest

from distrodebug import labels, sidecar
from distrodebug import privileges as profiles
from distrodebug.model import TargetInfo
from distrodebug.runtimes.docker.spec import container_kwargs


def info(user: str = "") -> TargetInfo:
    return TargetInfo(id="c0ffee", name="web", image="app:1", image_id="sha256:1", status="running",
                      user=user)


def test_user_root_on_a_non_root_target_can_still_read_it() -> None:
    chosen = profiles.choose_docker(info("65532"), user="0")
    assert chosen.view == "chroot" and chosen.cap_add == ("SYS_PTRACE",)
    assert "SYS_PTRACE" in chosen.reason
    assert profiles.choose_docker(info(""), user="0").cap_add == ()


@pytest.mark.parametrize(
    ("user", "job", "keep"),
    [("", "read", {"SYS_CHROOT", "SYS_PTRACE", "DAC_READ_SEARCH"}),
     ("65532", "read", {"SYS_CHROOT", "SYS_PTRACE", "DAC_READ_SEARCH"}),
     ("", "write", {"SYS_CHROOT", "SYS_PTRACE", "DAC_OVERRIDE", "FOWNER", "CHOWN"}),
     ("65532", "write", {"SETUID", "SETGID"}),
     ("", "memory", {"SYS_PTRACE", "DAC_READ_SEARCH"}),
     ("65532", "memory", {"SYS_PTRACE", "DAC_READ_SEARCH"})],
)
def test_jobs_drop_every_capability_they_do_not_need(user: str, job: profiles.Job,
                                                     keep: set[str]) -> None:
    target = info(user)
    chosen = profiles.for_job(profiles.choose_docker(target), target, job)
    assert chosen.cap_drop == ("ALL",) and set(chosen.cap_add) == keep
    assert chosen.no_new_privileges and chosen.pids_limit == profiles.JOB_PIDS_LIMIT
    assert chosen.memory_limit == profiles.JOB_MEMORY_LIMIT == 256 << 20
    spec = sidecar.build_spec(info=target, mode="join", image="tools:1", privileges=chosen,
                              command=("true",), tty=False, stdin=False,
                              labels=labels.session_labels(session_id="abcd1234", target="web"),
                              reaper=None)
    host = container_kwargs(spec, "distrodebug-abcd1234")["host_config"]
    assert host["cap_drop"] == ["ALL"] and set(host["cap_add"]) == keep
    assert host["security_opt"] == ["no-new-privileges"] and host["pids_limit"] == 256
    assert host["mem_limit"] == 256 << 20


def test_sessions_and_explicit_choices_are_left_alone() -> None:
    target = info("65532")
    chosen = profiles.choose_docker(target)
    assert profiles.for_job(chosen, target, "session") == chosen
    privileged = profiles.choose_docker(target, privileged=True)
    assert profiles.for_job(privileged, target, "read") == privileged
    as_user = profiles.choose_docker(target, user="65532")
    assert profiles.for_job(as_user, target, "read") == as_user


def test_memory_job_as_the_targets_own_user_has_no_capability() -> None:
    target = info("65532")
    chosen = profiles.for_job(profiles.choose_docker(target, user="65532:65532"), target, "memory")
    assert chosen.user == "65532:65532" and chosen.cap_add == () and chosen.cap_drop == ("ALL",)
    assert chosen.no_new_privileges and "same uid and gid" in chosen.reason
    kube = dataclasses.replace(profiles.choose_copy(), profile="general")
    assert profiles.for_job(kube, target, "memory") == kube  # Kubernetes profiles: as chosen
