"""`distrodebug doctor` against the API-server double, and on Docker."""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_k8s_sessions import app_pod, run_dd  # noqa: F401  (app_pod is a fixture)

pytestmark = [pytest.mark.engine]


def test_doctor_all_good(k8s_double: Any, app_pod: str, toolbox: str) -> None:  # noqa: F811
    ran = run_dd(k8s_double, toolbox, "doctor", "pod/api", "-o", "json")
    report = json.loads(ran.stdout)
    assert ran.returncode == 0, ran.stdout
    assert report["ok"] and report["runtime"] == "kubernetes"
    assert "general" in report["prediction"] or "auto" in report["prediction"]
    reviews = k8s_double.requests(method="POST", path_contains="selfsubjectaccessreviews")
    bodies = [json.loads(r.body) for r in reviews]
    patch = [b for b in bodies if b["spec"]["resourceAttributes"]["verb"] == "patch"]
    assert patch[0]["spec"]["resourceAttributes"]["subresource"] == "ephemeralcontainers"


def test_doctor_reports_missing_permission(k8s_double: Any, app_pod: str,  # noqa: F811
                                           toolbox: str) -> None:
    k8s_double.deny("patch", "pods", subresource="ephemeralcontainers")
    ran = run_dd(k8s_double, toolbox, "doctor", "pod/api")
    assert ran.returncode == 1
    assert "patch pods/ephemeralcontainers" in ran.stdout and "FAIL" in ran.stdout
    assert "debugging cannot work" in ran.stdout


def test_doctor_docker(dd: Any, make_container: Any, static_nonroot_image: str) -> None:
    target = make_container(static_nonroot_image)
    ran = dd("doctor", target.name, "-o", "json")
    report = json.loads(ran.out)
    assert ran.code == 0 and report["ok"]
    assert "SYS_PTRACE" in report["prediction"]
    ran = dd("doctor", "--image", "missing/image:0")
    assert ran.code == 1 and "toolbox build" in ran.out
