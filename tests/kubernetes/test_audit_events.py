"""A session on a pod leaves a 'Debugged' Event on it, where RBAC allows; where it does not, the
session goes on with one notice. The audit log names the pod by its UID either way."""

from __future__ import annotations

import getpass
import json
import socket
import sys
from pathlib import Path
from typing import Any

import pexpect

from tests.fixtures.cluster import RESTRICTED, Cluster, pod
from tests.kubernetes.test_refusals import grant, pods
from tests.kubernetes.test_sessions import PROMPT


def debugged_events(cluster: Cluster, ns: str) -> list[dict[str, Any]]:
    listed = cluster.kubectl("get", "events", "-n", ns, "--field-selector", "reason=Debugged",
                             "-o", "json")
    return list(json.loads(listed.out)["items"])


def audit(state: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (state / "audit.log").read_text().splitlines()]


def test_exec_leaves_an_event_on_the_pod(cluster: Cluster, ns: str, private_state: Path) -> None:
    cluster.apply(pod("api", cluster.images["static"]), namespace=ns)
    uid = cluster.wait_ready("api", ns)["metadata"]["uid"]
    ran = cluster.dd("exec", "pod/api", "-n", ns, "--reason", "INC-7 latency", "--", "true")
    assert ran.code == 0, ran.err
    assert "no Event" not in ran.err
    (event,) = debugged_events(cluster, ns)
    assert event["involvedObject"]["kind"] == "Pod" and event["involvedObject"]["uid"] == uid
    assert event["involvedObject"]["name"] == "api"
    assert event["type"] == "Normal" and event["reportingComponent"] == "distrodebug"
    who = f"debugged by {getpass.getuser()} from {socket.gethostname()}: INC-7 latency"
    assert event["message"].startswith(who), event["message"]
    (entry,) = audit(private_state)
    assert entry["target"]["pod_uid"] == uid and entry["target"]["namespace"] == ns
    assert entry["target"]["container"] == "app" and entry["target"]["image_id"]
    assert entry["id"] in event["message"]
    described = cluster.kubectl("describe", "pod", "api", "-n", ns).out
    assert "Debugged" in described
    doctor = cluster.dd("doctor", "pod/api", "-n", ns, "-o", "json")
    checks = {c["name"]: c for c in json.loads(doctor.out)["checks"]}
    assert checks["create events"]["ok"]


def test_without_events_create_the_session_works_with_one_notice(cluster: Cluster, ns: str,
                                                                 private_state: Path) -> None:
    cluster.apply(pod("api", cluster.images["static"]), namespace=ns)
    cluster.wait_ready("api", ns)
    grant(cluster, ns, [pods("get", "list", "watch"), pods("patch", sub="ephemeralcontainers"),
                        pods("get", "create", sub="exec")])
    ran = cluster.dd("exec", "--context", RESTRICTED, "pod/api", "-n", ns, "--reason", "r",
                     "--", "sh", "-c", "echo fine")
    assert ran.code == 0, ran.err
    assert ran.out.strip() == "fine"
    assert ran.err.count("no Event was left on pod 'api'") == 1, ran.err
    assert "may not create events" in ran.err
    assert debugged_events(cluster, ns) == []
    (entry,) = audit(private_state)
    assert entry["event"] == "exec" and entry["exit"] == 0 and entry["reason"] == "r"
    doctor = cluster.dd("doctor", "--context", RESTRICTED, "pod/api", "-n", ns, "-o", "json")
    checks = {c["name"]: c for c in json.loads(doctor.out)["checks"]}
    assert not checks["create events"]["ok"] and not checks["create events"]["required"]


def test_recorded_shell_on_a_pod(cluster: Cluster, ns: str, private_state: Path) -> None:
    cluster.apply(pod("api", cluster.images["static"]), namespace=ns)
    uid = cluster.wait_ready("api", ns)["metadata"]["uid"]
    child = pexpect.spawn(sys.executable, ["-m", "distrodebug", "shell", "pod/api", "-n", ns,
                                           "--reason", "INC-9"],
                          env=cluster.dd_env(), encoding="utf-8", timeout=90, dimensions=(30, 100))
    child.expect(PROMPT)
    child.sendline("echo pod-$((40 + 2))")
    child.expect("pod-42")
    child.expect(PROMPT)
    child.sendline("exit 3")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 3
    start, end = audit(private_state)
    assert (start["event"], end["event"], end["exit"]) == ("start", "end", 3)
    assert end["target"]["pod_uid"] == uid and end["mode"] == "join"
    cast = Path(end["recording"]["path"])
    output = "".join(e[2] for e in map(json.loads, cast.read_text().splitlines()[1:])
                     if e[1] == "o")
    assert "pod-42" in output
    assert "distrodebug-exit" not in output  # the debugger's exit mark is not recorded
    (event,) = debugged_events(cluster, ns)
    assert "INC-9" in event["message"] and start["id"] in event["message"]
    # The second session's Event anchors the log as the first one left it.
    again = cluster.dd("exec", "pod/api", "-n", ns, "--", "true")
    assert again.code == 0, again.err
    assert any(end["hash"] in e["message"] for e in debugged_events(cluster, ns))
    assert cluster.dd("audit", "verify").code == 0
