"""The 'Debugged' Event is a pure function of the pod, the container, the words and the time."""

from __future__ import annotations

from distrodebug.runtimes.kubernetes.events import debugged

POD = {"metadata": {"name": "api", "namespace": "shop", "uid": "0f1e-22"}}


def test_event_names_the_pod_by_uid() -> None:
    assert debugged(POD, "app", "debugged by ann from laptop: INC-1", "laptop",
                    "2026-11-30T07:00:00Z") == {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": "api.distrodebug-", "namespace": "shop"},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": "api", "namespace": "shop",
                           "uid": "0f1e-22", "fieldPath": "spec.containers{app}"},
        "reason": "Debugged",
        "message": "debugged by ann from laptop: INC-1",
        "type": "Normal",
        "source": {"component": "distrodebug", "host": "laptop"},
        "reportingComponent": "distrodebug",
        "reportingInstance": "laptop",
        "firstTimestamp": "2026-11-30T07:00:00Z",
        "lastTimestamp": "2026-11-30T07:00:00Z",
        "count": 1,
    }


def test_long_message_is_cut_and_no_container_means_no_field_path() -> None:
    event = debugged(POD, "", "x" * 5000, "h", "2026-11-30T07:00:00Z")
    assert len(event["message"]) == 1024
    assert "fieldPath" not in event["involvedObject"]


def test_generated_name_of_a_long_pod_stays_a_valid_subdomain() -> None:
    """Cut at 200 characters, a pod name may end in '-' or '.', which may not precede '.'."""
    import re

    for cut_at in ("-", "."):
        pod = {"metadata": {"name": "a" * 199 + cut_at + "b" * 40, "namespace": "shop"}}
        name = debugged(pod, "app", "m", "h", "2026-11-30T07:00:00Z")["metadata"]["generateName"]
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*",
                            name + "x2k4q"), name
