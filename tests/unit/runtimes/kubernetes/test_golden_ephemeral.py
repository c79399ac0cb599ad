"""The ephemeral container we send, per profile, against what real kubectl sent.

Ground truth: ../shared/reference/kubectl/log-eph-<profile>.txt (`kubectl debug mypod
--image=busybox --target=app --profile=<profile> -- sleep 3600`). Deliberate differences, left
out of the comparison: the name (distrodebug-xxxxx, kubectl's alphabet), the command (our entry
script wraps the user's command, so the session starts in the target's root view) and the env that
carries the script. Everything else must be kubectl's, key for key.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from distrodebug.model import SidecarSpec
from distrodebug.runtimes.kubernetes import profiles as kubeprofiles
from distrodebug.runtimes.kubernetes.spec import NAME_ALPHABET, debugger_name, ephemeral_container

REFERENCE = Path(__file__).resolve().parents[3] / "reference" / "kubectl"
DELIBERATE = {"name", "command", "env"}


def kubectl_patch(profile: str) -> dict[str, object]:
    text = (REFERENCE / f"log-eph-{profile}.txt").read_text()
    body = re.search(r"=== PATCH .*?\n(?:.*\n)*?\s+body: (\{.*\})", text)
    assert body, f"no PATCH body in log-eph-{profile}.txt"
    return json.loads(body.group(1))


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="the shared kubectl captures are not here")
@pytest.mark.parametrize("profile", ["legacy", "general", "baseline", "restricted", "netadmin",
                                     "sysadmin"])
def test_profile_matches_kubectl(profile: str) -> None:
    theirs = kubectl_patch(profile)["spec"]["ephemeralContainers"][0]  # type: ignore[index]
    choice = kubeprofiles.choose(profile, kubeprofiles.PodSecurity())
    spec = SidecarSpec(image="busybox", argv=("sleep", "3600"), mode="join", target_id="mypod",
                       labels={}, env={"DD_PID": "1"}, security_context=choice.security_context)
    ours = ephemeral_container(spec, "distrodebug-bcdfg", "app", choice.security_context)
    assert {k: v for k, v in ours.items() if k not in DELIBERATE} == {
        k: v for k, v in theirs.items() if k not in DELIBERATE}
    assert ours["command"] == ["sleep", "3600"]


def test_names_use_kubectl_alphabet_and_avoid_existing() -> None:
    import random

    rng = random.Random(7)
    name = debugger_name({"app"}, rng)
    assert re.fullmatch(rf"distrodebug-[{NAME_ALPHABET}]{{5}}", name)
    taken = {debugger_name(set(), random.Random(7))}
    assert debugger_name(taken, random.Random(7)) not in taken


@pytest.mark.parametrize(
    ("sec", "profile", "runs_as", "view"),
    [
        (kubeprofiles.PodSecurity(run_as_user=65532), "auto", 65532, "proc"),
        (kubeprofiles.PodSecurity(run_as_user=65532, enforce="restricted"), "restricted", 65532,
         "proc"),
        (kubeprofiles.PodSecurity(run_as_non_root=True), "auto", 65532, "proc"),
        (kubeprofiles.PodSecurity(run_as_user=0), "baseline", None, "chroot"),
        (kubeprofiles.PodSecurity(enforce="baseline", namespace_read=True), "baseline", None,
         "chroot"),
        (kubeprofiles.PodSecurity(namespace_read=True), "general", None, "chroot"),
        (kubeprofiles.PodSecurity(enforce="restricted", namespace_read=True), "restricted", 65532,
         "proc"),
    ],
)
def test_auto_picks_least_privilege(sec: kubeprofiles.PodSecurity, profile: str,
                                    runs_as: int | None, view: str) -> None:
    choice = kubeprofiles.choose("auto", sec)
    assert choice.profile == profile and choice.view == view
    assert (choice.security_context or {}).get("runAsUser") == runs_as
    level = sec.enforce or "privileged"
    ctx = choice.security_context or {}
    # Never something the namespace's level is certain to refuse.
    if level in ("baseline", "restricted"):
        assert not ctx.get("privileged") and not (ctx.get("capabilities") or {}).get("add")
    if level == "restricted":
        assert ctx.get("runAsNonRoot") and ctx.get("allowPrivilegeEscalation") is False
        assert ctx["capabilities"]["drop"] == ["ALL"]


def test_named_profile_refused_before_sending_when_level_forbids_it() -> None:
    from distrodebug.errors import UsageError

    with pytest.raises(UsageError) as info:
        kubeprofiles.choose("general", kubeprofiles.PodSecurity(enforce="baseline"))
    assert "--profile baseline" in info.value.hint
