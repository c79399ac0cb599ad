"""The two pods distrodebug creates on Kubernetes, as plain dicts: a debuggable copy of a pod, and
a node debugging pod. Pure functions: no API call, no kubernetes import.

Ground truth is what ``kubectl debug --copy-to`` and ``kubectl debug node/NAME`` send
(captured in tests/reference/kubectl/log-copy-*.txt and log-node-*.txt, and what the API server
stores for kubectl's own pods on the test cluster); tests/unit/runtimes/kubernetes/test_golden_pods.py
compares key by key and lists where we differ on purpose. The main difference for copies:
kubectl adds a debugger container next to the app, which sees the app's files only through
``/proc/<pid>/root`` and only while the app runs. A crash-looping distroless app has no
``sleep`` or shell to keep it up, so we keep the *app container itself* up instead: an init
container copies the toolbox's ``/bin`` into an emptyDir, and the app container runs our shell
from there, in the app image's own root, with its volumes, env and user.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Mapping, Sequence
from typing import Any

from distrodebug.errors import NoSuchTarget, UsageError
from distrodebug.runtimes.kubernetes.profiles import PROFILE_CONTEXT, KubeChoice

#: kubectl's alphabet for generated names: no vowels, no 0/1/3 (same as runtimes.kubernetes,
#: repeated here so that this module does not import the kubernetes client).
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
#: A pod's hostname is its name cut to 63 characters; keep node pod names within it.
MAX_NAME = 63

TOOLS_VOLUME = "distrodebug-tools"
TOOLS_CONTAINER = "distrodebug-tools"
TOOLS_MOUNT = "/.distrodebug"
#: Hard-linked busybox applets stay hard links with ``cp -a`` (about 2 MB, not 270 copies).
#: As a non-root user it warns that it cannot preserve the owner of the emptyDir; it still exits 0.
TOOLS_COPY = ("/bin/sh", "-c", f"cp -a /bin/. {TOOLS_MOUNT}/")

ANNOTATION_EXPIRES = "io.distrodebug.expires"
ANNOTATION_COPY_OF = "io.distrodebug.cp-of"
#: Labels by which a controller adopts orphan pods it selects (ReplicaSet, Job). Kept on a copy,
#: they would make the controller adopt it and then delete a surplus pod, possibly the original.
CONTROLLER_LABELS = ("pod-template-hash", "controller-uid", "batch.kubernetes.io/controller-uid")

PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
#: Volume sources that are the new pod's own (a fresh emptyDir, the API's own data): a copy may
#: write them. Anything else (claims, host paths, NFS...) is shared with the original.
PRIVATE_VOLUMES = frozenset({"emptyDir", "configMap", "secret", "downwardAPI", "projected",
                             "ephemeral"})
DISTROLESS_NONROOT = 65532

#: Node pods, per profile, as kubectl builds them (debug.go generateNodeDebugPod + profiles.go).
NODE_PROFILES = ("general", "baseline", "restricted", "netadmin", "sysadmin", "legacy")
NODE_AUTO = "general"
NODE_CONTEXT: dict[str, dict[str, Any] | None] = {
    "legacy": None,
    "general": None,  # kubectl's general clears the node container's securityContext
    "baseline": None,
    "restricted": PROFILE_CONTEXT["restricted"],
    "netadmin": PROFILE_CONTEXT["netadmin"],
    "sysadmin": PROFILE_CONTEXT["sysadmin"],
}
NODE_HOST_NAMESPACES = frozenset({"legacy", "general", "netadmin", "sysadmin"})
NODE_HOST_ROOT = frozenset({"legacy", "general", "sysadmin"})


# -- pod copies ------------------------------------------------------------------------------------
def pod_copy(
    pod: Mapping[str, Any],
    container: str,
    *,
    name: str,
    debug_image: str,
    choice: KubeChoice,
    env: Mapping[str, str],
    argv: Sequence[str],
    labels: Mapping[str, str],
    expires: str,
    set_image: Mapping[str, str] | None = None,
    keep_labels: bool = False,
    keep_annotations: bool = False,
    keep_probes: Sequence[str] = (),
    keep_init_containers: bool = True,
    same_node: bool = False,
    share_processes: bool | None = None,
    writable_volumes: bool = False,
    annotations: Mapping[str, str] | None = None,
    tty: bool = True,
    stdin: bool = True,
) -> dict[str, Any]:
    """A copy of ``pod`` in which ``container`` runs ``argv`` from our tools instead of the app.

    Like ``kubectl debug --copy-to`` with the profile's stripping, plus: restartPolicy Never
    (a copy that dies must not crash-loop too), processes always shared, probes removed from
    every container, the app container's lifecycle hooks removed (they would run against an app
    that is not running and kill the container), and only our annotations. ``keep_labels`` keeps
    the pod's labels except the controller hashes in :data:`CONTROLLER_LABELS`; ours win.
    ``set_image`` works as kubectl's ``--set-image``: a container's own name beats ``*``.
    The ``keep_*`` flags are kubectl's; kept probes stay on the other containers only, since the
    app container runs our shell and its probes would kill it. Volumes the copy shares with the
    original (claims, host paths, network filesystems) are mounted read-only unless
    ``writable_volumes``; a pod with claims keeps its node, where a ReadWriteOnce claim is
    attached (kubectl's ``--same-node``).
    """
    source_meta = pod.get("metadata") or {}
    spec: dict[str, Any] = copy.deepcopy(dict(pod.get("spec") or {}))
    names = [c.get("name") for c in spec.get("containers") or []]
    if container not in names:
        raise NoSuchTarget(
            f"Pod '{source_meta.get('name', '')}' has no container '{container}'.",
            f"Its containers: {', '.join(str(n) for n in names)}.",
        )

    spec.pop("ephemeralContainers", None)
    claims = any("persistentVolumeClaim" in v for v in spec.get("volumes") or [])
    if not (same_node or claims):
        spec.pop("nodeName", None)
    spec["shareProcessNamespace"] = True if share_processes is None else share_processes
    spec["restartPolicy"] = "Never"
    if not keep_init_containers:
        spec.pop("initContainers", None)
    for key in ("containers", "initContainers"):
        for item in spec.get(key) or []:
            for probe in PROBES:
                if probe not in keep_probes or item.get("name") == container:
                    item.pop(probe, None)
    if not writable_volumes:
        shared = {v["name"] for v in spec.get("volumes") or [] if not set(v) & PRIVATE_VOLUMES}
        for key in ("containers", "initContainers"):
            for item in spec.get(key) or []:
                for mount in item.get("volumeMounts") or []:
                    if mount.get("name") in shared:
                        mount["readOnly"] = True
    for item in spec["containers"]:
        override = (set_image or {}).get(item["name"]) or (set_image or {}).get("*")
        if override:
            item["image"] = override

    # A copy of a copy: replace our previous toolbox rather than adding a second one.
    volumes = [v for v in spec.get("volumes") or [] if v.get("name") != TOOLS_VOLUME]
    spec["volumes"] = [*volumes, {"name": TOOLS_VOLUME, "emptyDir": {}}]
    inits = [c for c in spec.get("initContainers") or [] if c.get("name") != TOOLS_CONTAINER]
    app = next(c for c in spec["containers"] if c["name"] == container)
    # First: it needs nothing the pod's own init containers do. Those still run (kubectl keeps
    # them too), so one that fails stops the copy before the app container starts.
    spec["initContainers"] = [_tools_init(debug_image, spec, app, choice), *inits]
    _make_debuggable(app, argv=argv, env=env, choice=choice, tty=tty, stdin=stdin)

    meta: dict[str, Any] = {"name": name}
    if source_meta.get("namespace"):
        meta["namespace"] = source_meta["namespace"]
    kept = {k: v for k, v in (source_meta.get("labels") or {}).items()
            if k not in CONTROLLER_LABELS} if keep_labels else {}
    meta["labels"] = {**kept, **labels}
    own = dict(source_meta.get("annotations") or {}) if keep_annotations else {}
    meta["annotations"] = {**own, **(annotations or {}), ANNOTATION_EXPIRES: expires,
                           ANNOTATION_COPY_OF: str(source_meta.get("name", ""))}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def _tools_init(debug_image: str, spec: Mapping[str, Any], app: Mapping[str, Any],
                choice: KubeChoice) -> dict[str, Any]:
    """The init container that fills the tools volume; it needs no privilege at all."""
    init: dict[str, Any] = {
        "name": TOOLS_CONTAINER,
        "image": debug_image,
        "command": list(TOOLS_COPY),
        "resources": {},
        "volumeMounts": [{"name": TOOLS_VOLUME, "mountPath": TOOLS_MOUNT}],
        "terminationMessagePolicy": "File",
    }
    context = init_security_context(spec.get("securityContext") or {},
                                    app.get("securityContext") or {}, choice)
    if context is not None:
        init["securityContext"] = context
    return init


def init_security_context(pod_context: Mapping[str, Any], app_context: Mapping[str, Any],
                          choice: KubeChoice) -> dict[str, Any] | None:
    """The tools init container's securityContext: none, or restricted as a non-root user.

    Restricted when the profile is (or the namespace's level made it so), or when the pod
    requires non-root: the toolbox image runs as root, which the kubelet refuses in a
    runAsNonRoot pod. The user is the pod's, else the app container's, else the profile's, else
    distroless's 65532: it only reads the toolbox's /bin and writes to an emptyDir (mode 0777).
    Otherwise nothing, so the container inherits the pod's settings like the app does (and
    never carries a uid a policy such as OpenShift's uid ranges would refuse).
    """
    profile_context = choice.security_context or {}
    restricted = (choice.profile == "restricted" or profile_context.get("runAsNonRoot") is True
                  or pod_context.get("runAsNonRoot") is True)
    if not restricted:
        return None
    uid = next((u for u in (pod_context.get("runAsUser"), app_context.get("runAsUser"),
                            profile_context.get("runAsUser")) if isinstance(u, int) and u != 0),
               DISTROLESS_NONROOT)
    context = copy.deepcopy(dict(PROFILE_CONTEXT["restricted"] or {}))
    context["runAsUser"] = uid
    return context


def _make_debuggable(app: dict[str, Any], *, argv: Sequence[str], env: Mapping[str, str],
                     choice: KubeChoice, tty: bool, stdin: bool) -> None:
    """Turn the app container into the debug session, keeping its image, volumes and user."""
    app["command"] = list(argv)
    app.pop("args", None)
    app.pop("lifecycle", None)
    mounts = [m for m in app.get("volumeMounts") or [] if m.get("mountPath") != TOOLS_MOUNT
              and m.get("name") != TOOLS_VOLUME]
    app["volumeMounts"] = [*mounts, {"name": TOOLS_VOLUME, "mountPath": TOOLS_MOUNT,
                                     "readOnly": True}]
    own_env = [e for e in app.get("env") or [] if e.get("name") not in env]
    app["env"] = [*own_env, *({"name": k, "value": v} for k, v in env.items())]
    for key, wanted in (("stdin", stdin), ("stdinOnce", stdin), ("tty", tty)):
        if wanted:
            app[key] = True
        else:
            app.pop(key, None)
    context = merge_security_context(app.get("securityContext"), choice.security_context)
    if context is None:
        app.pop("securityContext", None)
    else:
        app["securityContext"] = context


def merge_security_context(own: Mapping[str, Any] | None,
                           profile: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The profile's securityContext over the container's own.

    Every key the profile sets wins (runAsUser, privileged, seccompProfile, ...); keys it does
    not set keep the container's value (readOnlyRootFilesystem, runAsGroup, ...). Capabilities
    are the exception: ``add`` and ``drop`` are the union of both, the container's first, so the
    app keeps its own posture and gains what the profile asks for. An own key the profile
    contradicts is dropped: ``privileged`` under ``allowPrivilegeEscalation: false`` and the
    reverse, which the API server would reject together. None when the result is empty.
    """
    merged: dict[str, Any] = copy.deepcopy(dict(own or {}))
    wanted: Mapping[str, Any] = profile or {}
    for key, value in wanted.items():
        if key != "capabilities":
            merged[key] = copy.deepcopy(value)
            continue
        caps = merged.setdefault("capabilities", {})
        for part in ("add", "drop"):
            both = [*(caps.get(part) or []), *(value.get(part) or [])]
            if both:
                caps[part] = list(dict.fromkeys(both))
    if merged.get("privileged") and merged.get("allowPrivilegeEscalation") is False:
        if wanted.get("privileged"):
            merged.pop("allowPrivilegeEscalation")
        else:
            merged.pop("privileged")
    return merged or None


# -- node pods -------------------------------------------------------------------------------------
def node_profile(profile: str) -> str:
    """The node profile ``profile`` stands for; ``auto`` is ``general``.

    A node pod is there to see the host: its processes, sockets and files. general gives the
    host's PID, network and IPC namespaces and its root at /host, without privileged mode or
    added capabilities; baseline and restricted would isolate the pod from the very host it is
    about, and sysadmin (privileged) is more than looking needs. It is also what kubectl does by
    default from 1.36 (legacy, its default before, sends the same node pod). No Pod Security
    reasoning can make it smaller: host namespaces and hostPath need the privileged level anyway.
    """
    chosen = NODE_AUTO if profile == "auto" else profile
    if chosen not in NODE_PROFILES:
        raise UsageError(f"Unknown profile '{profile}'.",
                         f"Use one of: auto, {', '.join(NODE_PROFILES)}.")
    return chosen


def node_pod(
    node: str,
    *,
    name: str,
    debug_image: str,
    profile: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    labels: Mapping[str, str],
    tty: bool = True,
    stdin: bool = True,
) -> dict[str, Any]:
    """kubectl's node debugging pod for ``profile``, with our name, command, env and labels.

    The caller POSTs it into a namespace (kubectl sends no namespace in the body either). We do not
    add kubectl 1.34's ``app.kubernetes.io/managed-by: kubectl-debug``: it would be false, and
    tools cleaning up after kubectl would act on our pods; ``labels`` (io.distrodebug.tool=...)
    say who made it. stdinOnce comes with stdin, so the pod ends when the session does.
    """
    chosen = node_profile(profile)
    debugger: dict[str, Any] = {
        "name": "debugger",
        "image": debug_image,
        "command": list(argv),
        "resources": {},
        "terminationMessagePolicy": "File",
    }
    if env:
        debugger["env"] = [{"name": k, "value": v} for k, v in env.items()]
    if stdin:
        debugger.update(stdin=True, stdinOnce=True)
    if tty:
        debugger["tty"] = True
    context = NODE_CONTEXT[chosen]
    if context is not None:
        debugger["securityContext"] = copy.deepcopy(context)
    spec: dict[str, Any] = {}
    if chosen in NODE_HOST_ROOT:
        spec["volumes"] = [{"name": "host-root", "hostPath": {"path": "/"}}]
        debugger["volumeMounts"] = [{"name": "host-root", "mountPath": "/host"}]
    spec.update(containers=[debugger], restartPolicy="Never", nodeName=node)
    if chosen in NODE_HOST_NAMESPACES:
        spec.update(hostNetwork=True, hostPID=True, hostIPC=True)
    spec["tolerations"] = [{"operator": "Exists"}]
    meta: dict[str, Any] = {"name": name}
    if labels:
        meta["labels"] = dict(labels)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def node_pod_name(node: str, rng: random.Random | None = None) -> str:
    """``node-debugger-<node>-<5 random>``, kubectl's name, with the node cut to fit 63 chars."""
    rng = rng or random.Random()
    suffix = "".join(rng.choice(NAME_ALPHABET) for _ in range(5))
    room = MAX_NAME - len("node-debugger-") - len(suffix) - 1
    # A DNS label may not end in '-' or '.', nor may the part before ours.
    part = node[:room].rstrip("-.")
    return f"node-debugger-{part}-{suffix}"
