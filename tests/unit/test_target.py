from __future__ import annotations

import pytest

from distrodebug.errors import InvalidTarget
from distrodebug.target import Target, is_image_reference, parse_image, parse_target

CASES = [
    ("web", Target(kind="container", name="web")),
    ("docker://web", Target(kind="container", name="web")),
    ("3f2a9c", Target(kind="container", name="3f2a9c")),
    ("/web", Target(kind="container", name="web")),
    ("pod/api", Target(kind="pod", name="api", runtime="kubernetes")),
    ("po/api", Target(kind="pod", name="api", runtime="kubernetes")),
    ("pods/api/app", Target(kind="pod", name="api", runtime="kubernetes", container="app")),
    ("k8s://prod/api", Target(kind="pod", name="api", runtime="kubernetes", namespace="prod")),
    (
        "k8s://prod/api/app",
        Target(kind="pod", name="api", runtime="kubernetes", namespace="prod", container="app"),
    ),
    ("node/worker-1", Target(kind="node", name="worker-1", runtime="kubernetes")),
    (
        "deploy/api",
        Target(kind="workload", name="api", runtime="kubernetes", resource="deployment"),
    ),
    ("sts/db", Target(kind="workload", name="db", runtime="kubernetes", resource="statefulset")),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_parse(text: str, expected: Target) -> None:
    assert parse_target(text) == expected


def test_flags_fill_gaps() -> None:
    assert parse_target("pod/api", container="app", namespace="prod") == Target(
        kind="pod", name="api", runtime="kubernetes", namespace="prod", container="app"
    )
    # The node has no namespace; the debugging pod made on it goes to -n, as kubectl's does.
    assert parse_target("node/worker-1", namespace="ops") == Target(
        kind="node", name="worker-1", runtime="kubernetes", namespace="ops"
    )


@pytest.mark.parametrize(
    "text",
    ["", "we b", "-web", "pod/API", "pod/", "k8s://onlyone", "weird/thing", "pod/a/B_C", "a;rm"],
)
def test_rejects(text: str) -> None:
    with pytest.raises(InvalidTarget) as info:
        parse_target(text)
    assert info.value.hint


def test_conflicting_container() -> None:
    with pytest.raises(InvalidTarget) as info:
        parse_target("pod/api/app", container="other")
    assert "once" in info.value.hint


def test_kubernetes_flags_on_docker_target() -> None:
    with pytest.raises(InvalidTarget) as info:
        parse_target("web", container="app")
    assert "pod/web" in info.value.hint


@pytest.mark.parametrize(
    "ref",
    [
        "busybox",
        "busybox:1.36",
        "gcr.io/distroless/python3:nonroot",
        "localhost:5000/team/app:v1.2",
        "registry.example.com/a/b@sha256:" + "a" * 64,
        "sha256:" + "b" * 64,
        "0123456789ab",
    ],
)
def test_image_refs(ref: str) -> None:
    assert is_image_reference(ref)
    assert parse_image(ref).kind == "image"


@pytest.mark.parametrize("ref", ["UPPER/case", "a::b", "bad ref", "x:", "/abs", "a@sha256:xyz"])
def test_bad_image_refs(ref: str) -> None:
    with pytest.raises(InvalidTarget):
        parse_image(ref)


def test_str() -> None:
    assert str(parse_target("pod/api/app")) == "pod/api/app"
    assert str(parse_target("web")) == "web"
