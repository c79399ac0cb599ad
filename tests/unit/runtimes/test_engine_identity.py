"""Which engine answers on a Docker API socket, and the changes Podman makes to every container."""

from __future__ import annotations

from distrodebug.runtimes.docker.spec import engine_from_version, without_engine_changes


def test_podman_names_itself_only_in_components() -> None:
    podman = {"Platform": {"Name": "linux/amd64/debian-12"}, "Version": "4.3.1", "ApiVersion": "1.41",
              "Components": [{"Name": "Podman Engine", "Version": "4.3.1"},
                             {"Name": "Conmon", "Version": "conmon version 2.1.6"}]}
    docker = {"Platform": {"Name": ""}, "Version": "20.10.24+dfsg1",
              "Components": [{"Name": "Engine", "Version": "20.10.24+dfsg1"},
                             {"Name": "containerd", "Version": "1.6.20~ds1"}]}
    assert engine_from_version(podman) == ("Podman", "4.3.1")
    assert engine_from_version(docker) == ("Docker", "20.10.24+dfsg1")
    assert engine_from_version({}) == ("Docker", "?")


def test_podman_start_changes_are_not_changes() -> None:
    lines = ["C /etc", "A /var", "A /var/tmp", "A /tmp/written", "C /etc/passwd"]
    assert without_engine_changes(lines, "Podman", read_only=True) == ["A /tmp/written", "C /etc/passwd"]
    assert without_engine_changes(lines, "Podman", read_only=False) == lines[1:]
    assert without_engine_changes(lines, "Docker", read_only=True) == lines
