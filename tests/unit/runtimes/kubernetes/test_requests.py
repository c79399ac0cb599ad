"""Pure builders of what we send to a cluster, as data (issue 10's rules a real API server holds)."""

from __future__ import annotations

import pytest

from distrodebug.cli.words import pflag_booleans
from distrodebug.errors import UsageError
from distrodebug.runtimes.kubernetes.errors import pss_containers
from distrodebug.runtimes.kubernetes.profiles import PROFILE_CONTEXT, request_context
from distrodebug.runtimes.kubernetes.spec import label_selector, merge_custom, request_hash

RESTRICTED = PROFILE_CONTEXT["restricted"]


def test_privileged_drops_the_profiles_no_escalation_which_the_api_server_rejects_with_it() -> None:
    ctx = request_context(RESTRICTED, user=None, cap_add=(), privileged=True)
    assert ctx is not None and ctx["privileged"] is True and "allowPrivilegeEscalation" not in ctx


def test_user_zero_says_run_as_non_root_false_over_the_pods_true() -> None:
    ctx = request_context(None, user="0", cap_add=(), privileged=False)
    assert ctx == {"runAsUser": 0, "runAsNonRoot": False}
    assert request_context(None, user="65532:65532", cap_add=(), privileged=False) == {
        "runAsUser": 65532, "runAsGroup": 65532}
    with pytest.raises(UsageError, match="numeric"):
        request_context(None, user="nobody", cap_add=(), privileged=False)


def test_added_capabilities_join_the_profiles() -> None:
    ctx = request_context(PROFILE_CONTEXT["general"], user=None, cap_add=("cap_net_admin",),
                          privileged=False)
    assert ctx == {"capabilities": {"add": ["SYS_PTRACE", "NET_ADMIN"]}}
    assert PROFILE_CONTEXT["general"] == {"capabilities": {"add": ["SYS_PTRACE"]}}  # not mutated


def test_selectors_keep_match_expressions() -> None:
    selector = {"matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]},
                                     {"key": "canary", "operator": "DoesNotExist"},
                                     {"key": "zone", "operator": "NotIn", "values": ["x"]},
                                     {"key": "team", "operator": "Exists"}]}
    assert label_selector(selector) == "app=web,tier in (a,b),!canary,zone notin (x),team"
    assert label_selector({"matchExpressions": [{"key": "app", "operator": "In",
                                                 "values": ["web"]}]}) == "app in (web)"
    assert label_selector({}) == ""


def test_request_hash_tells_targets_and_privileges_apart() -> None:
    base = {"image": "tools:1", "targetContainerName": "app", "command": ["sh"],
            "env": [{"name": "DD_VIEW", "value": "chroot"}, {"name": "TERM", "value": "xterm"}]}
    assert request_hash(base) == request_hash({**base, "name": "other", "env": base["env"][:1]})
    assert request_hash(base) != request_hash({**base, "targetContainerName": "sidecar"})
    assert request_hash(base) != request_hash({**base, "securityContext": {"runAsUser": 1}})


def test_custom_merges_like_a_strategic_merge_patch_and_refuses_our_fields() -> None:
    ours = {"name": "d", "image": "tools:1", "env": [{"name": "A", "value": "1"}],
            "securityContext": {"capabilities": {"add": ["SYS_PTRACE"]}}}
    merged = merge_custom(ours, {"env": [{"name": "A", "value": "2"}, {"name": "B", "value": "3"}],
                                 "securityContext": {"runAsUser": 65532}})
    assert merged["env"] == [{"name": "A", "value": "2"}, {"name": "B", "value": "3"}]
    assert merged["securityContext"] == {"capabilities": {"add": ["SYS_PTRACE"]}, "runAsUser": 65532}
    with pytest.raises(UsageError, match="image"):
        merge_custom(ours, {"image": "evil"})


def test_pod_security_messages_name_their_containers() -> None:
    why = ('allowPrivilegeEscalation != false (containers "app", "distrodebug-x" must set '
           'securityContext.allowPrivilegeEscalation=false), unrestricted capabilities '
           '(container "distrodebug-x" must set securityContext.capabilities.drop=["ALL"])')
    assert pss_containers(why) == ("app", "distrodebug-x")


def test_kubectl_spells_booleans_as_flag_equals_value() -> None:
    assert pflag_booleans(["shell", "pod/x", "--attach=false", "--share-processes=true",
                           "--keep-init-containers=false", "--", "echo", "--attach=false"]) == [
        "shell", "pod/x", "--no-attach", "--share-processes", "--no-keep-init-containers", "--",
        "echo", "--attach=false"]


def test_socks_proxies_are_refused_for_streams_and_http_ones_are_not() -> None:
    import pytest

    from distrodebug.errors import SidecarFailed
    from distrodebug.runtimes.kubernetes.stream import refuse_socks

    for proxy in (None, "", "http://proxy:3128", "https://proxy:3128"):
        refuse_socks(proxy)
    for proxy in ("socks5://127.0.0.1:1080", "SOCKS5h://proxy:1080", "socks4a://p:1"):
        with pytest.raises(SidecarFailed, match="SOCKS"):
            refuse_socks(proxy)
