"""Pod copies and node pods we create, against what real kubectl POSTed.

Ground truth: ../shared/reference/kubectl/log-copy-<variant>.txt (`kubectl debug mypod --copy-to
mypod-debug ...`) and log-node-<profile>.txt (`kubectl debug node/node-1 --image=busybox
--profile=<profile> -- sleep 3600`), kubectl 1.33, bodies decoded from protobuf with zero values
dropped. The decoder keeps Go's embedded ``volumeSource`` struct that JSON inlines; we inline it.

The source pod is rebuilt from the captures (:data:`SOURCE`): the set-image-only copy is the pod
itself with the name and image changed and nodeName cleared, and the --same-node copy shows
``nodeName: node-1``; a test checks that reconstruction first.

Deliberate differences for pod copies, excluded from the comparison and checked on their own:

* no extra ``debugger-xxxxx`` container: the app container itself becomes the session. Its
  ``command`` is our entry script, ``args`` are cleared, our ``env`` is appended, ``stdin``,
  ``stdinOnce`` and ``tty`` follow the flags, its ``lifecycle`` hooks are removed, and the profile's
  securityContext is merged over its own (so it equals kubectl's debugger container's here, the
  app having none). The app keeps its image: in ``--copy-to -c app --image=busybox`` (modify)
  kubectl swaps it for the debug image, losing the app's files, the very thing we debug;
* the tools come from an init container ``distrodebug-tools`` (the debug image; kubectl's debugger
  image) into an emptyDir ``distrodebug-tools`` mounted read-only at /.distrodebug in the app;
* ``restartPolicy: Never`` (a copy that dies must not crash-loop too) and
  ``shareProcessNamespace: true`` always (legacy and --share-processes=false leave it unset/false);
* probes are always removed (legacy and --keep-liveness keep kubectl's);
* labels are ours (plus the pod's with keep_labels); annotations are only ours (expiry, source).

Node pods: everything but the name, command, env, stdin/stdinOnce/tty and our labels is
kubectl's, key for key; with kubectl's name and command and no env or labels they are equal.
"""

from __future__ import annotations

import copy
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest

from distrodebug.errors import NoSuchTarget, UsageError
from distrodebug.runtimes.kubernetes import pods as kubepods
from distrodebug.runtimes.kubernetes import profiles as kubeprofiles
from distrodebug.runtimes.kubernetes.pods import (
    ANNOTATION_COPY_OF,
    ANNOTATION_EXPIRES,
    TOOLS_CONTAINER,
    TOOLS_MOUNT,
    TOOLS_VOLUME,
    merge_security_context,
    node_pod,
    node_pod_name,
    pod_copy,
)
from distrodebug.sidecar import entry_argv

REFERENCE = Path(__file__).resolve().parents[3] / "reference" / "kubectl"
needs_reference = pytest.mark.skipif(not REFERENCE.is_dir(),
                                     reason="the shared kubectl captures are not here")

DISTROLESS = "gcr.io/distroless/static-debian12:nonroot"
LIVENESS = {"httpGet": {"path": "/healthz", "port": 8080}}
SOURCE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "mypod", "namespace": "default", "labels": {"app": "demo"},
        "annotations": {"a": "b"}, "uid": "0b5c3f2e-0000-4000-8000-000000000001",
        "resourceVersion": "1042", "creationTimestamp": "2025-05-01T10:00:00Z",
        "generateName": "mypod-",
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "mypod-rs",
                             "uid": "0b5c3f2e-0000-4000-8000-000000000002", "controller": True}],
    },
    "spec": {
        "containers": [{
            "name": "app", "image": DISTROLESS, "resources": {}, "livenessProbe": LIVENESS,
            "terminationMessagePath": "/dev/termination-log", "imagePullPolicy": "IfNotPresent",
            "terminationMessagePolicy": "File",
        }],
        "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst", "nodeName": "node-1",
        "securityContext": {"runAsUser": 65532, "runAsNonRoot": True},
        "schedulerName": "default-scheduler",
    },
    "status": {"phase": "Running", "containerStatuses": [
        {"name": "app", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]},
}
#: `kubectl debug` flags of each capture, as pod_copy arguments.
COPIES: dict[str, dict[str, Any]] = {
    "legacy": {"profile": "legacy"},
    "general": {"profile": "general"},
    "baseline": {"profile": "baseline"},
    "restricted": {"profile": "restricted"},
    "netadmin": {"profile": "netadmin"},
    "sysadmin": {"profile": "sysadmin"},
    # --profile=general --same-node --share-processes=false --set-image='*=nginx:debug'
    # --keep-labels --keep-annotations --keep-liveness --replace
    "flags": {"profile": "general", "same_node": True, "set_image": {"*": "nginx:debug"},
              "keep_labels": True},
    # --profile=general -c app --image=busybox -- sh: kubectl turns the app container into the
    # debugger by swapping its image; we keep the image and bring the tools in.
    "modify": {"profile": "general"},
    # --set-image=app=myapp:debug alone: kubectl runs no profile and adds no container.
    "setimage-only": {"profile": "legacy", "set_image": {"app": "myapp:debug"}},
}
NODE_PROFILES = ["legacy", "general", "baseline", "restricted", "netadmin", "sysadmin"]

OURS = {"io.distrodebug.tool": "distrodebug", "io.distrodebug.session": "s1"}
EXPIRES = "2025-05-01T11:00:00Z"
ARGV = entry_argv("snapshot", None, reaper=None, tools_mount=TOOLS_MOUNT)
ENV = {"DD_SCRIPT": "echo copy", "DD_TOOLS": TOOLS_MOUNT}
PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
APP_DELIBERATE = {"command", "args", "env", "stdin", "stdinOnce", "tty", "securityContext",
                  "lifecycle", *PROBES}
POD_DELIBERATE = {"restartPolicy", "shareProcessNamespace"}


def posted(capture: str) -> dict[str, Any]:
    """The Pod kubectl POSTed in a capture, as JSON (decoded from protobuf by the recorder)."""
    text = (REFERENCE / capture).read_text()
    post = re.search(r"^=== POST /api/v1/namespaces/[^/]+/pods\n", text, re.M)
    assert post, f"no pod POST in {capture}"
    start = text.index("decoded protobuf body:\n", post.end())
    body, _ = json.JSONDecoder().raw_decode(text, text.index("{", start))
    return inline_volume_source(body)


def inline_volume_source(pod: dict[str, Any]) -> dict[str, Any]:
    """Go's Volume embeds VolumeSource, which JSON inlines and the protobuf decoder did not."""
    for volume in pod.get("spec", {}).get("volumes") or []:
        volume.update(volume.pop("volumeSource", {}))
    return pod


def without(item: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in keys}


def choice_for(profile: str, pod: dict[str, Any] = SOURCE) -> kubeprofiles.KubeChoice:
    return kubeprofiles.choose(profile, kubeprofiles.pod_security(pod, "app", None))


def copy_of(pod: dict[str, Any], container: str = "app", profile: str = "general",
            **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("name", "mypod-debug")
    kwargs.setdefault("debug_image", "busybox")
    kwargs.setdefault("env", ENV)
    kwargs.setdefault("argv", ARGV)
    kwargs.setdefault("labels", OURS)
    kwargs.setdefault("expires", EXPIRES)
    return pod_copy(pod, container, choice=choice_for(profile, pod), **kwargs)


def containers(pod: dict[str, Any], key: str = "containers") -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in pod["spec"].get(key) or []}


# -- the source pod --------------------------------------------------------------------------------
@needs_reference
def test_source_pod_is_what_the_captures_show() -> None:
    theirs = posted("log-copy-setimage-only.txt")
    rebuilt = copy.deepcopy(theirs)
    rebuilt["metadata"]["name"] = "mypod"
    rebuilt["spec"]["containers"][0]["image"] = DISTROLESS
    rebuilt["spec"]["nodeName"] = posted("log-copy-flags.txt")["spec"]["nodeName"]
    assert rebuilt["spec"] == SOURCE["spec"]
    assert rebuilt["metadata"] == {k: SOURCE["metadata"][k]
                                   for k in ("name", "namespace", "labels", "annotations")}


# -- pod copies against kubectl --------------------------------------------------------------------
@needs_reference
@pytest.mark.parametrize("variant", list(COPIES))
def test_copy_matches_kubectl(variant: str) -> None:
    theirs = posted(f"log-copy-{variant}.txt")
    options = dict(COPIES[variant])
    profile = options.pop("profile")
    ours = copy_of(SOURCE, profile=profile, **options)

    # kubectl's debug container: an added debugger-xxxxx, or the app itself (modify), or none.
    added = [c for c in theirs["spec"]["containers"] if c["name"].startswith("debugger-")]
    debugger = added[0] if added else (containers(theirs)["app"] if variant == "modify" else None)
    app = containers(ours)["app"]
    init = containers(ours, "initContainers")[TOOLS_CONTAINER]
    if debugger is not None:
        assert init["image"] == debugger["image"]
        assert init["terminationMessagePolicy"] == debugger["terminationMessagePolicy"]
        assert app.get("securityContext") == debugger.get("securityContext")
    else:
        assert "securityContext" not in app
    assert app["command"] == list(ARGV) and "args" not in app
    assert app["env"] == [{"name": k, "value": v} for k, v in ENV.items()]
    assert app["stdin"] is app["stdinOnce"] is app["tty"] is True
    assert {"name": TOOLS_VOLUME, "mountPath": TOOLS_MOUNT, "readOnly": True} in app["volumeMounts"]
    assert ours["spec"]["restartPolicy"] == "Never" and ours["spec"]["shareProcessNamespace"] is True
    assert not any(p in c for c in ours["spec"]["containers"] for p in PROBES)
    expected_labels = {**(SOURCE["metadata"]["labels"] if options.get("keep_labels") else {}), **OURS}
    assert ours["metadata"]["labels"] == expected_labels
    assert ours["metadata"]["annotations"] == {ANNOTATION_EXPIRES: EXPIRES,
                                               ANNOTATION_COPY_OF: "mypod"}

    # Everything else, key by key.
    theirs_spec = dict(theirs["spec"])
    theirs_spec["containers"] = [
        without(c, APP_DELIBERATE | ({"image"} if variant == "modify" else set()))
        for c in theirs_spec["containers"] if c is not debugger or variant == "modify"]
    ours_spec = dict(ours["spec"])
    ours_spec["containers"] = []
    for item in ours["spec"]["containers"]:
        item = without(item, APP_DELIBERATE | ({"image"} if variant == "modify" else set()))
        mounts = [m for m in item.get("volumeMounts", []) if m["name"] != TOOLS_VOLUME]
        item = without(item, {"volumeMounts"}) | ({"volumeMounts": mounts} if mounts else {})
        ours_spec["containers"].append(item)
    for key, ours_name in (("initContainers", TOOLS_CONTAINER), ("volumes", TOOLS_VOLUME)):
        kept = [v for v in ours_spec.pop(key) if v["name"] != ours_name]
        if kept:
            ours_spec[key] = kept
    assert without(ours_spec, POD_DELIBERATE) == without(theirs_spec, POD_DELIBERATE)
    meta = {"labels", "annotations"}
    assert without(ours["metadata"], meta) == without(theirs["metadata"], meta)
    assert without(ours, {"metadata", "spec"}) == without(theirs, {"metadata", "spec"})
    if variant == "modify":
        assert app["image"] == DISTROLESS


def test_copy_keeps_no_server_fields() -> None:
    ours = copy_of(SOURCE)
    assert set(ours) == {"apiVersion", "kind", "metadata", "spec"}
    assert set(ours["metadata"]) == {"name", "namespace", "labels", "annotations"}
    assert "nodeName" not in ours["spec"]


def test_copy_does_not_change_the_source() -> None:
    before = copy.deepcopy(SOURCE)
    copy_of(SOURCE, set_image={"*": "x"}, same_node=True, keep_labels=True)
    assert SOURCE == before


# -- pod copies: edge cases ------------------------------------------------------------------------
def pod_with(**spec: Any) -> dict[str, Any]:
    pod = copy.deepcopy(SOURCE)
    pod["spec"].update(spec)
    return pod


SIDECAR = {"name": "proxy", "image": "envoy:1", "args": ["--config", "/etc/envoy.yaml"],
           "readinessProbe": {"tcpSocket": {"port": 9901}}, "env": [{"name": "A", "value": "1"}],
           "volumeMounts": [{"name": "config", "mountPath": "/etc/envoy.yaml", "subPath": "e"}]}
INIT = {"name": "migrate", "image": "migrate:1", "command": ["/migrate"]}


def test_set_image_star_and_named_like_kubectl() -> None:
    pod = pod_with(containers=[*SOURCE["spec"]["containers"], SIDECAR], initContainers=[INIT])
    ours = copy_of(pod, set_image={"*": "debug:1"})
    assert {c["name"]: c["image"] for c in ours["spec"]["containers"]} == {
        "app": "debug:1", "proxy": "debug:1"}
    inits = containers(ours, "initContainers")
    assert inits["migrate"]["image"] == "migrate:1" and inits[TOOLS_CONTAINER]["image"] == "busybox"
    ours = copy_of(pod, set_image={"*": "debug:1", "app": "app:debug"})
    assert {c["name"]: c["image"] for c in ours["spec"]["containers"]} == {
        "app": "app:debug", "proxy": "debug:1"}
    assert containers(copy_of(pod, set_image={"proxy": "p:2"}))["app"]["image"] == DISTROLESS


def test_same_node_keeps_node_name() -> None:
    assert copy_of(SOURCE, same_node=True)["spec"]["nodeName"] == "node-1"
    assert "nodeName" not in copy_of(SOURCE)["spec"]


def test_keep_labels_adds_ours_and_drops_controller_hashes() -> None:
    pod = copy.deepcopy(SOURCE)
    pod["metadata"]["labels"] = {"app": "demo", "pod-template-hash": "5d9f", "tier": "web",
                                 "io.distrodebug.session": "old",
                                 "batch.kubernetes.io/controller-uid": "u"}
    assert copy_of(pod)["metadata"]["labels"] == OURS
    assert copy_of(pod, keep_labels=True)["metadata"]["labels"] == {
        "app": "demo", "tier": "web", **OURS}
    assert copy_of(pod, keep_labels=True)["metadata"]["annotations"] == {
        ANNOTATION_EXPIRES: EXPIRES, ANNOTATION_COPY_OF: "mypod"}


RESTRICTED: dict[str, Any] = kubeprofiles.PROFILE_CONTEXT["restricted"] or {}


@pytest.mark.parametrize(
    ("pod_context", "app_context", "profile", "expected"),
    [
        # The captures' pod: runAsNonRoot with a uid; the init container runs as that uid.
        ({"runAsUser": 65532, "runAsNonRoot": True}, {}, "baseline", {**RESTRICTED, "runAsUser": 65532}),
        # runAsNonRoot with no uid anywhere: root would be refused, distroless's nonroot is not.
        ({"runAsNonRoot": True}, {}, "general", {**RESTRICTED, "runAsUser": 65532}),
        # ... or the app container's own uid when it names one.
        ({"runAsNonRoot": True}, {"runAsUser": 1000}, "legacy", {**RESTRICTED, "runAsUser": 1000}),
        # A restricted profile on a pod that says nothing still gets a non-root init container.
        ({}, {}, "restricted", {**RESTRICTED, "runAsUser": 65532}),
        # Nothing demanded: no securityContext, the pod's settings apply as to the app.
        ({}, {}, "general", None),
        ({"runAsUser": 1000}, {}, "sysadmin", None),
    ],
)
def test_tools_init_container_is_allowed_to_run(pod_context: dict[str, Any],
                                                app_context: dict[str, Any], profile: str,
                                                expected: dict[str, Any] | None) -> None:
    pod = pod_with(securityContext=pod_context)
    pod["spec"]["containers"][0]["securityContext"] = app_context
    init = containers(copy_of(pod, profile=profile), "initContainers")[TOOLS_CONTAINER]
    assert init.get("securityContext") == expected
    assert init["command"] == ["/bin/sh", "-c", "cp -a /bin/. /.distrodebug/"]
    assert init["volumeMounts"] == [{"name": TOOLS_VOLUME, "mountPath": TOOLS_MOUNT}]
    if expected:
        assert expected["runAsUser"] != 0 and expected["runAsNonRoot"] is True


def test_auto_choice_for_a_uid_gives_a_restricted_init_container() -> None:
    ours = copy_of(pod_with(securityContext={"runAsUser": 1001}), profile="auto")
    init = containers(ours, "initContainers")[TOOLS_CONTAINER]
    assert init["securityContext"] == {**RESTRICTED, "runAsUser": 1001}
    assert containers(ours)["app"]["securityContext"]["runAsUser"] == 1001


def test_volumes_and_mounts_are_kept() -> None:
    volumes = [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
               {"name": "config", "configMap": {"name": "cfg"}}]
    pod = pod_with(volumes=volumes, containers=[
        {**SOURCE["spec"]["containers"][0],
         "volumeMounts": [{"name": "data", "mountPath": "/var/lib/app"}]}, SIDECAR])
    ours = copy_of(pod)
    assert ours["spec"]["volumes"] == [*volumes, {"name": TOOLS_VOLUME, "emptyDir": {}}]
    # Deliberate difference from kubectl: a claim the copy shares with the original is read-only,
    # so a debugging session cannot corrupt the live app's data.
    assert containers(ours)["app"]["volumeMounts"] == [
        {"name": "data", "mountPath": "/var/lib/app", "readOnly": True},
        {"name": TOOLS_VOLUME, "mountPath": TOOLS_MOUNT, "readOnly": True}]
    assert containers(ours)["proxy"]["volumeMounts"] == SIDECAR["volumeMounts"]
    writable = copy_of(pod, writable_volumes=True)
    assert containers(writable)["app"]["volumeMounts"][0] == {"name": "data",
                                                             "mountPath": "/var/lib/app"}


def test_a_pod_with_claims_keeps_its_node_for_read_write_once_volumes() -> None:
    claims = pod_with(nodeName="node-1", volumes=[
        {"name": "data", "persistentVolumeClaim": {"claimName": "data"}}])
    assert copy_of(claims)["spec"]["nodeName"] == "node-1"
    assert "nodeName" not in copy_of(pod_with(nodeName="node-1"))["spec"]
    assert copy_of(pod_with(nodeName="node-1"), same_node=True)["spec"]["nodeName"] == "node-1"


def test_ephemeral_containers_are_dropped() -> None:
    pod = pod_with(ephemeralContainers=[{"name": "distrodebug-bcdfg", "image": "busybox",
                                         "targetContainerName": "app"}])
    assert "ephemeralContainers" not in copy_of(pod)["spec"]


def test_only_the_chosen_container_changes() -> None:
    pod = pod_with(containers=[*SOURCE["spec"]["containers"], SIDECAR], initContainers=[INIT])
    ours = copy_of(pod, container="proxy")
    assert containers(ours)["app"] == without(SOURCE["spec"]["containers"][0], {"livenessProbe"})
    proxy = containers(ours)["proxy"]
    assert proxy["command"] == list(ARGV) and "args" not in proxy
    assert proxy["env"] == [{"name": "A", "value": "1"},
                            *({"name": k, "value": v} for k, v in ENV.items())]
    assert "readinessProbe" not in proxy
    # Ours first (it needs nothing theirs do); the pod's own init containers are kept as kubectl does.
    assert [c["name"] for c in ours["spec"]["initContainers"]] == [TOOLS_CONTAINER, "migrate"]
    assert containers(ours, "initContainers")["migrate"] == INIT
    ours = copy_of(pod)
    assert containers(ours)["proxy"] == without(SIDECAR, {"readinessProbe"})


def test_app_container_details() -> None:
    app = {**SOURCE["spec"]["containers"][0], "args": ["--serve"], "command": ["/app"],
           "stdin": True, "tty": True, "workingDir": "/srv",
           "lifecycle": {"postStart": {"httpGet": {"path": "/warm", "port": 8080}}},
           "startupProbe": LIVENESS, "readinessProbe": LIVENESS,
           "env": [{"name": "DD_TOOLS", "value": "theirs"}, {"name": "B", "value": "2"}],
           "securityContext": {"readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}}
    ours = containers(copy_of(pod_with(containers=[app]), tty=False, stdin=False))["app"]
    assert ours["command"] == list(ARGV) and "args" not in ours and "lifecycle" not in ours
    assert not {"stdin", "stdinOnce", "tty", *PROBES} & set(ours)
    assert ours["workingDir"] == "/srv"
    assert ours["env"] == [{"name": "B", "value": "2"},
                           *({"name": k, "value": v} for k, v in ENV.items())]
    assert ours["securityContext"] == {"readOnlyRootFilesystem": True, "capabilities": {
        "drop": ["ALL"], "add": ["SYS_PTRACE"]}}


def test_copy_of_a_copy_has_one_toolbox() -> None:
    again = copy_of(copy_of(SOURCE), name="mypod-debug-2")
    assert [v["name"] for v in again["spec"]["volumes"]] == [TOOLS_VOLUME]
    assert [c["name"] for c in again["spec"]["initContainers"]] == [TOOLS_CONTAINER]
    assert [m["mountPath"] for m in containers(again)["app"]["volumeMounts"]] == [TOOLS_MOUNT]
    assert again["metadata"]["annotations"][ANNOTATION_COPY_OF] == "mypod-debug"


def test_unknown_container_is_refused() -> None:
    with pytest.raises(NoSuchTarget) as info:
        copy_of(SOURCE, container="nope")
    assert "app" in info.value.hint


@pytest.mark.parametrize(
    ("own", "profile", "expected"),
    [
        (None, None, None),
        ({"runAsUser": 1000}, None, {"runAsUser": 1000}),
        (None, {"privileged": True}, {"privileged": True}),
        ({"capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}, "runAsUser": 1000},
         {"capabilities": {"add": ["SYS_PTRACE", "NET_BIND_SERVICE"]}, "runAsUser": 65532},
         {"capabilities": {"add": ["NET_BIND_SERVICE", "SYS_PTRACE"], "drop": ["ALL"]},
          "runAsUser": 65532}),
        ({"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True},
         {"privileged": True}, {"privileged": True, "readOnlyRootFilesystem": True}),
        ({"privileged": True}, RESTRICTED, RESTRICTED),
    ],
)
def test_profile_context_merged_over_the_containers(own: dict[str, Any] | None,
                                                     profile: dict[str, Any] | None,
                                                     expected: dict[str, Any] | None) -> None:
    assert merge_security_context(own, profile) == expected


# -- node pods -------------------------------------------------------------------------------------
@needs_reference
@pytest.mark.parametrize("profile", NODE_PROFILES)
def test_node_pod_matches_kubectl(profile: str) -> None:
    theirs = posted(f"log-node-{profile}.txt")
    same = node_pod("node-1", name=theirs["metadata"]["name"], debug_image="busybox",
                    profile=profile, argv=("sleep", "3600"), env={}, labels={}, tty=False,
                    stdin=False)
    assert same == theirs

    ours = node_pod("node-1", name=node_pod_name("node-1"), debug_image="busybox",
                    profile=profile, argv=ARGV, env=ENV, labels=OURS)
    assert ours["metadata"] == {"name": ours["metadata"]["name"], "labels": OURS}
    debugger = ours["spec"]["containers"][0]
    assert debugger["stdin"] is debugger["stdinOnce"] is debugger["tty"] is True
    deliberate = {"command", "env", "stdin", "stdinOnce", "tty"}
    assert without(debugger, deliberate) == without(theirs["spec"]["containers"][0], deliberate)
    assert without(ours["spec"], {"containers"}) == without(theirs["spec"], {"containers"})


@needs_reference
def test_node_auto_is_general() -> None:
    kwargs: dict[str, Any] = {"name": "n", "debug_image": "busybox", "argv": ("sleep", "3600"),
                              "env": {}, "labels": {}}
    assert node_pod("node-1", profile="auto", **kwargs) == node_pod(
        "node-1", profile="general", **kwargs)


def test_node_pod_unknown_profile_is_refused() -> None:
    with pytest.raises(UsageError):
        node_pod("node-1", name="n", debug_image="busybox", profile="root", argv=("sh",),
                 env={}, labels={})


def test_node_pod_names() -> None:
    from distrodebug.runtimes.kubernetes.spec import NAME_ALPHABET

    assert kubepods.NAME_ALPHABET == NAME_ALPHABET
    name = node_pod_name("node-1", random.Random(3))
    assert re.fullmatch(rf"node-debugger-node-1-[{NAME_ALPHABET}]{{5}}", name)
    assert name == node_pod_name("node-1", random.Random(3))
    long = node_pod_name("ip-10-0-12-34.eu-west-1.compute.internal" + "x" * 60)
    assert len(long) == 63 and long.startswith("node-debugger-ip-10-0-12-34.eu-west-1.compute")
    # A cut that ends on '-' or '.' would make an invalid DNS label.
    cut = node_pod_name("a" * 42 + ".b" * 10)
    assert re.fullmatch(rf"node-debugger-a{{42}}-[{NAME_ALPHABET}]{{5}}", cut)
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", cut) and ".-" not in cut
