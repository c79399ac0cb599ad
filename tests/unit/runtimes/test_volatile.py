"""The pure readers of a target's volatile state: times, Docker state and events, pod status
and Events, and the newest-bytes log cap."""

from __future__ import annotations

from distrodebug.clock import iso_or_none
from distrodebug.model import RuntimeState
from distrodebug.runtimes.docker import state as dockerstate
from distrodebug.runtimes.kubernetes import state as kubestate
from distrodebug.runtimes.volatile import MAX_EVENTS, NewestBytes, newest_events


def test_times_in_one_form() -> None:
    assert iso_or_none("2026-11-30T07:12:59.123456789Z") == "2026-11-30T07:12:59.123456Z"
    assert iso_or_none("2026-11-30T08:12:59+01:00") == "2026-11-30T07:12:59Z"
    assert iso_or_none("2026-11-30T07:12:59.5+00:00") == "2026-11-30T07:12:59.500000Z"
    assert iso_or_none("0001-01-01T00:00:00Z") is None
    assert iso_or_none("yesterday") is None and iso_or_none(None) is None


def test_docker_state_events_and_merge() -> None:
    raw = {"Created": "2026-11-30T07:00:00.1Z", "RestartCount": 2,
           "State": {"Status": "running", "StartedAt": "2026-11-30T07:05:00Z",
                     "FinishedAt": "2026-11-30T07:04:59Z", "ExitCode": 137, "OOMKilled": True,
                     "Health": {"Status": "unhealthy", "FailingStreak": 1, "Log": [
                         {"Start": "2026-11-30T07:06:00+00:00", "End": "2026-11-30T07:06:01Z",
                          "ExitCode": 1, "Output": "refused\n"}]}}}
    state = dockerstate.container_state(raw)
    assert state["finished_at"] == "2026-11-30T07:04:59Z" and state["restart_count"] == 2
    events = dockerstate.state_events(state)
    assert [e["reason"] for e in events] == ["Created", "Started", "Finished", "HealthCheck"]
    assert events[2]["type"] == "Warning" and "out of memory" in events[2]["message"]
    engine = [dockerstate.engine_event({"Action": "start", "Type": "container",
                                        "timeNano": 1796022300_500_000_000}),
              dockerstate.engine_event({"Action": "exec_create: sh -c id", "time": 1796022330,
                                        "Actor": {"Attributes": {"execID": "e1", "x": "y"}}})]
    assert engine[1] is not None and engine[1]["reason"] == "exec_create"
    assert engine[1]["message"] == "exec_create: sh -c id (execID=e1)"
    merged = newest_events(dockerstate.merge_events(events, [e for e in engine if e]), [])
    # The engine's "start" at 07:05:00.5 stands for inspect's "Started" at 07:05:00.
    assert [e["reason"] for e in merged] == ["Created", "Finished", "start", "exec_create",
                                             "HealthCheck"]
    never = dockerstate.container_state({"State": {"Status": "created",
                                                   "StartedAt": "0001-01-01T00:00:00Z"}})
    assert never["started_at"] is None and dockerstate.state_events(never) == []


def test_pod_state_and_events() -> None:
    pod = {"metadata": {"creationTimestamp": "2026-11-30T07:00:00Z", "uid": "u1"},
           "spec": {"nodeName": "n1"},
           "status": {"phase": "Running", "startTime": "2026-11-30T07:00:01Z",
                      "conditions": [{"type": "Ready", "status": "True",
                                      "lastTransitionTime": "2026-11-30T07:00:30Z"}],
                      "containerStatuses": [{"name": "app", "restartCount": 1, "state": {
                          "running": {"startedAt": "2026-11-30T07:00:29Z"}}, "lastState": {
                          "terminated": {"startedAt": "2026-11-30T07:00:02Z", "exitCode": 3,
                                         "finishedAt": "2026-11-30T07:00:03Z",
                                         "reason": "Error"}}}]}}
    state = kubestate.pod_state(pod, "app")
    assert kubestate.restarted(state)
    assert state["container"]["last"]["exit_code"] == 3
    reasons = [e["reason"] for e in sorted(kubestate.state_events(state), key=lambda e: e["time"])]
    assert reasons == ["Created", "ContainerStarted", "ContainerFinished", "ContainerStarted",
                       "ConditionReady"]
    event = kubestate.pod_event({"type": "Warning", "reason": "BackOff", "count": 4,
                                 "message": "Back-off restarting failed container",
                                 "firstTimestamp": "2026-11-30T07:00:04Z",
                                 "lastTimestamp": "2026-11-30T07:00:20Z",
                                 "source": {"component": "kubelet"},
                                 "involvedObject": {"kind": "Pod", "name": "web",
                                                    "fieldPath": "spec.containers{app}"}})
    assert event == {"time": "2026-11-30T07:00:20Z", "first": "2026-11-30T07:00:04Z", "count": 4,
                     "type": "Warning", "reason": "BackOff",
                     "message": "Back-off restarting failed container", "source": "kubelet",
                     "object": "spec.containers{app}"}
    series = kubestate.pod_event({"eventTime": "2026-11-30T07:00:04.000001Z", "reason": "X",
                                  "reportingComponent": "sched",
                                  "series": {"count": 9, "lastObservedTime": "2026-11-30T07:01:00Z"}})
    assert series is not None and series["time"] == "2026-11-30T07:01:00Z" and series["count"] == 9
    assert kubestate.pod_event({"reason": "timeless"}) is None


def test_newest_bytes_keeps_whole_newest_lines() -> None:
    kept = NewestBytes(limit=20)
    kept.feed_all([b"line-%02d\n" % i for i in range(30)])
    assert kept.cut and kept.total == 240
    assert kept.text() == "line-28\nline-29\n"
    assert "240 bytes read" in (kept.note("logs") or "")
    small = NewestBytes(limit=100).feed_all([b"a\n", b"b\n"])
    assert small.text() == "a\nb\n" and small.note("logs") is None


def test_runtime_state_members() -> None:
    state = RuntimeState("2026-11-30T07:00:00Z", {"status": "running"}, logs="x\n",
                         previous_logs="y\n", raw={"events.json": []})
    members = state.members()
    assert set(members) == {"events.json", "runtime-state.json", "logs.txt", "logs.previous.txt"}
    assert members["runtime-state.json"]["previous_logs"] == "logs.previous.txt"
    assert "logs.previous.txt" not in RuntimeState("t", {}).members()
    image = RuntimeState("t", {}, logs=None).members()
    assert set(image) == {"runtime-state.json"} and image["runtime-state.json"]["logs"] is None


def test_newest_events_order_by_time_and_cap() -> None:
    events = [{"time": "2026-11-30T07:00:52Z", "reason": "whole"},
              {"time": "2026-11-30T07:00:52.5Z", "reason": "later"},
              {"time": "2026-11-30T07:00:51.9Z", "reason": "earlier"}]
    notes: list[str] = []
    assert [e["reason"] for e in newest_events(events, notes)] == ["earlier", "whole", "later"]
    assert notes == []
    many = [{"time": f"2026-11-30T07:{i // 60:02d}:{i % 60:02d}Z", "n": i}
            for i in range(MAX_EVENTS + 5)]
    kept = newest_events(many[::-1], notes)
    assert len(kept) == MAX_EVENTS and kept[-1]["n"] == MAX_EVENTS + 4 and kept[0]["n"] == 5
    assert notes and "newest 1000 of 1005" in notes[0]
