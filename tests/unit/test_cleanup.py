"""Leftovers are told from live sessions by the owner labels; every label value is valid on Kubernetes."""

from __future__ import annotations

import os

import pytest

from distrodebug import cleanup, labels
from distrodebug.model import OwnedObject


def owned(kind: str, host: str, pid: str) -> OwnedObject:
    return OwnedObject(kind, kind + pid, kind, "", {labels.OWNER_HOST: host, labels.OWNER_PID: pid,
                                                    labels.SESSION: "s"})


def test_dead_owner_is_a_leftover_live_one_is_not() -> None:
    host = labels.this_host()
    items = cleanup.classify([
        owned("volume", host, "999999999"),
        owned("container", host, str(os.getpid())),
        owned("image", host, "999999998"),
        owned("container", "elsewhere", "1"),
    ])
    assert [i.alive for i in items] == [False, True, False, True]
    doomed = cleanup.removable(items, everything=False)
    assert [i.kind for i in doomed] == ["image", "volume"]
    assert [i.kind for i in cleanup.removable(items, everything=True)][:2] == [
        "container", "container"]


def test_objects_without_owner_labels_are_leftovers() -> None:
    (item,) = cleanup.classify([OwnedObject("pod", "p", "p", "", {labels.SESSION: "s"})])
    assert not item.alive


@pytest.mark.parametrize("target", [
    "web", "a" * 200, "my.pod-with_odd.name", "-leading", "tail-", "ns/pod:c", "host:1234",
    "名前", "x\ny", "", "2026-11-30T02:23:50Z",
])
def test_every_label_value_is_valid_on_kubernetes(target: str) -> None:
    made = labels.session_labels(session_id=labels.new_session_id(), target=target, role="copy")
    for key, value in made.items():
        assert labels.is_label_value(value), (key, value)
    assert labels.session_annotations(target=target)[labels.TARGET_NAME] == target


def test_label_value_keeps_valid_values_and_tells_different_ones_apart() -> None:
    assert labels.label_value("web-1") == "web-1"
    long_a, long_b = "a" * 70 + "x", "a" * 70 + "y"
    assert labels.label_value(long_a) != labels.label_value(long_b)
    assert labels.compact_time(0) == "19700101T000000Z"
