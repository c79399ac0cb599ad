"""Turn the words a user types into a frozen Target; pure, no engine or cluster is asked.

Accepted forms:
  web, docker://web, 3f2a9c (ID prefix)          a Docker container
  pod/api, pod/api/app, po/api, pods/api          a Kubernetes pod (optionally its container)
  k8s://ns/api, k8s://ns/api/app                  a pod with its namespace spelled out
  deploy/api, statefulset/db, ...                 a workload resolved to one of its pods
  node/worker-1                                   a node
  an image reference (with --image-target)        a plain image, explored without running it
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from distrodebug.errors import InvalidTarget

Kind = Literal["container", "image", "pod", "workload", "node"]

# Docker's own rule for container names, plus a leading slash it reports in inspect output.
_CONTAINER_NAME = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
# RFC 1123 subdomain, which Kubernetes uses for pod and node names.
_K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
# RFC 1123 label, which Kubernetes uses for container names and namespaces.
_K8S_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")

# The docker reference grammar (distribution/reference), written out piece by piece.
_ALNUM = r"[a-z0-9]+"
_SEP = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEP}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
# A first component is a registry only with a dot, a port or as localhost, as docker decides.
_DOMAIN = (
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})+(?::[0-9]+)?"
    rf"|{_DOMAIN_COMPONENT}:[0-9]+|localhost|\[[0-9a-fA-F:]+\](?::[0-9]+)?)"
)
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_IMAGE_REF = re.compile(
    rf"^(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*(?::{_TAG})?(?:@{_DIGEST})?$"
)
_IMAGE_ID = re.compile(r"^(?:sha256:)?[0-9a-f]{12,64}$")

_WORKLOADS = {
    "deploy": "deployment",
    "deployment": "deployment",
    "deployments": "deployment",
    "sts": "statefulset",
    "statefulset": "statefulset",
    "statefulsets": "statefulset",
    "ds": "daemonset",
    "daemonset": "daemonset",
    "daemonsets": "daemonset",
    "rs": "replicaset",
    "replicaset": "replicaset",
    "replicasets": "replicaset",
    "job": "job",
    "jobs": "job",
}
_PODS = {"pod", "pods", "po"}
_NODES = {"node", "nodes", "no"}


@dataclass(frozen=True)
class Target:
    """What the user asked to debug, before anything was looked up."""

    kind: Kind
    name: str
    runtime: Literal["docker", "kubernetes"] = "docker"
    namespace: str | None = None
    container: str | None = None
    #: For workloads: deployment, statefulset, daemonset, replicaset, job.
    resource: str | None = None

    def __str__(self) -> str:
        if self.runtime == "docker":
            return self.name
        prefix = {"pod": "pod", "node": "node", "workload": self.resource or "workload"}
        text = f"{prefix.get(self.kind, self.kind)}/{self.name}"
        return f"{text}/{self.container}" if self.container else text


def is_image_reference(text: str) -> bool:
    """True when ``text`` is a valid image reference or image ID."""
    return bool(_IMAGE_REF.match(text) or _IMAGE_ID.match(text))


def parse_image(text: str) -> Target:
    """An image reference typed with --image-target."""
    if not is_image_reference(text):
        raise InvalidTarget(
            f"'{text}' is not a valid image reference.",
            "Use the form [registry/]repository[:tag][@sha256:digest], for example "
            "'gcr.io/distroless/python3:nonroot', or an image ID from 'docker images'.",
        )
    return Target(kind="image", name=text)


def parse_target(
    text: str, *, container: str | None = None, namespace: str | None = None
) -> Target:
    """Parse a target as typed on the command line; ``-c``/``-n`` flags fill the gaps."""
    text = text.strip()
    if not text:
        raise InvalidTarget("No target was given.", "Name a container, e.g. 'distrodebug shell web'.")
    for scheme in ("k8s://", "kubernetes://"):
        if text.startswith(scheme):
            return _parse_k8s_url(text[len(scheme) :], text, container)
    if text.startswith("/"):
        return _docker_container(text, text)
    if text.startswith("docker://"):
        return _docker_container(text[len("docker://") :], text)
    if "/" in text:
        head, _, rest = text.partition("/")
        head = head.lower()
        if head in _PODS:
            return _pod(rest, text, container, namespace)
        if head in _NODES:
            # Nodes have no namespace, but the debugging pod we create on one does (-n), as
            # kubectl's does.
            return Target(kind="node", name=_k8s_name(rest, text), runtime="kubernetes",
                          namespace=namespace)
        if head in _WORKLOADS:
            return Target(
                kind="workload",
                name=_k8s_name(rest, text),
                runtime="kubernetes",
                namespace=namespace,
                container=_k8s_label(container, text) if container else None,
                resource=_WORKLOADS[head],
            )
        raise InvalidTarget(
            f"'{text}' is not a target distrodebug understands.",
            "Use a container name or ID for Docker (web, docker://web), or pod/NAME, "
            "pod/NAME/CONTAINER, deploy/NAME, node/NAME or k8s://NAMESPACE/POD/CONTAINER for "
            "Kubernetes. To explore an image, use --image-target IMAGE.",
        )
    if container is not None or namespace is not None:
        raise InvalidTarget(
            f"-c/--container and -n/--namespace apply to Kubernetes targets, but '{text}' names a "
            "Docker container.",
            f"Write the pod as pod/{text} to debug it on Kubernetes.",
        )
    return _docker_container(text, text)


def _docker_container(name: str, typed: str) -> Target:
    if not _CONTAINER_NAME.match(name):
        raise InvalidTarget(
            f"'{typed}' is not a valid container name or ID.",
            "Container names use letters, digits, '_', '.' and '-'; run 'docker ps -a' to see them.",
        )
    return Target(kind="container", name=name.lstrip("/"))


def _pod(rest: str, typed: str, container: str | None, namespace: str | None) -> Target:
    name, _, inline_container = rest.partition("/")
    if inline_container and container and inline_container != container:
        raise InvalidTarget(
            f"'{typed}' names container '{inline_container}' but -c says '{container}'.",
            "Name the container once, either in the target or with -c.",
        )
    chosen = inline_container or container
    return Target(
        kind="pod",
        name=_k8s_name(name, typed),
        runtime="kubernetes",
        namespace=_k8s_label(namespace, typed) if namespace else None,
        container=_k8s_label(chosen, typed) if chosen else None,
    )


def _parse_k8s_url(rest: str, typed: str, container: str | None) -> Target:
    parts = rest.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise InvalidTarget(
            f"'{typed}' is not a valid Kubernetes target.",
            "Use k8s://NAMESPACE/POD or k8s://NAMESPACE/POD/CONTAINER.",
        )
    namespace, pod = parts[0], parts[1]
    return _pod("/".join([pod, *parts[2:]]), typed, container, namespace)


def _k8s_name(name: str, typed: str) -> str:
    if not _K8S_NAME.match(name):
        raise InvalidTarget(
            f"'{typed}' does not name a valid Kubernetes object: '{name}' must be lowercase "
            "letters, digits, '-' and '.'.",
            "Check the name with 'kubectl get pods' (or nodes, deployments).",
        )
    return name


def _k8s_label(name: str, typed: str) -> str:
    if not _K8S_LABEL.match(name):
        raise InvalidTarget(
            f"'{name}' in '{typed}' is not a valid Kubernetes container or namespace name.",
            "Names are lowercase letters, digits and '-', at most 63 characters.",
        )
    return name
