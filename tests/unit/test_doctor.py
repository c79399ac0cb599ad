"""doctor's Kubernetes checks with a fake cluster: which permissions are required, by version."""

from __future__ import annotations

from distrodebug import doctor
from distrodebug.model import TargetInfo
from distrodebug.settings import Settings
from distrodebug.target import Target


class FakeCluster:
    endpoint = "https://fake"
    namespace = "default"

    def __init__(self, version: str, denied: set[tuple[str, str]]) -> None:
        self.version, self.denied = version, denied

    def server_version(self) -> str:
        return self.version

    def can_i(self, verb: str, resource: str, subresource: str, name: str) -> tuple[bool, str]:
        return (verb, subresource) not in self.denied, ""

    def namespace_labels(self) -> dict[str, str] | None:
        return {}

    def inspect(self, target: Target) -> TargetInfo:
        raise AssertionError("no target in these checks")


def test_create_on_exec_and_attach_is_required_from_1_35_only() -> None:
    """Issue 10, item 12: doctor called them optional, and 1.35 refuses WebSocket exec without."""
    denied = {("create", "exec"), ("create", "attach")}
    old = doctor.kubernetes(FakeCluster("v1.34.4", denied), None, Settings())
    new = doctor.kubernetes(FakeCluster("v1.35.0", denied), None, Settings())
    assert old.ok and not new.ok
    failed = [c.name for c in new.checks if c.required and not c.ok]
    assert failed == ["create pods/attach", "create pods/exec"]
