"""The engine client's pure parts: where the engine is (DOCKER_HOST, TLS, contexts), what a request
carries, how answers and errors are read. tests/docker/test_engine.py drives it against the engine."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path

import pytest

from distrodebug.errors import (
    AmbiguousTarget,
    EngineUnreachable,
    NoSuchTarget,
    PermissionDenied,
    SidecarFailed,
)
from distrodebug.runtimes.docker.engine import bodies, wire
from distrodebug.runtimes.docker.engine import errors as engine_errors
from distrodebug.runtimes.docker.engine.client import EngineClient, registry_auth
from distrodebug.runtimes.docker.engine.endpoint import Endpoint, TLSSettings, endpoint_from_env, parse_host
from distrodebug.runtimes.docker.engine.errors import APIError, NotFound
from distrodebug.runtimes.docker.runtime import DockerRuntime
from distrodebug.runtimes.docker.translate import translate

# ------------------------------------------------------------------------------------- hosts


@pytest.mark.parametrize(("url", "expected"), [
    ("unix:///var/run/docker.sock", Endpoint("unix:///var/run/docker.sock", "unix",
                                             path="/var/run/docker.sock")),
    ("unix:///run/user/1000/docker.sock", Endpoint("unix:///run/user/1000/docker.sock", "unix",
                                                   path="/run/user/1000/docker.sock")),
    ("/tmp/d.sock", Endpoint("unix:///tmp/d.sock", "unix", path="/tmp/d.sock")),
    ("tcp://10.0.0.5", Endpoint("tcp://10.0.0.5", "tcp", host="10.0.0.5", port=2375)),
    ("tcp://engine.example:1234", Endpoint("tcp://engine.example:1234", "tcp",
                                           host="engine.example", port=1234)),
    ("ssh://me@box", Endpoint("ssh://me@box", "ssh", host="box", port=22)),
])
def test_parse_host(url: str, expected: Endpoint) -> None:
    assert parse_host(url) == expected


def test_tcp_with_tls_defaults_to_2376() -> None:
    tls = TLSSettings(verify=True, ca="/c/ca.pem")
    assert parse_host("tcp://h", tls) == Endpoint("tcp://h", "tcp", host="h", port=2376, tls=tls)


@pytest.mark.parametrize("url", ["npipe:////./pipe/docker_engine", "fd://", "tcp://", "ftp://x"])
def test_unusable_hosts_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        parse_host(url)


def _certs(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (directory / name).write_text("x")
    return directory


def test_docker_host_with_tls_verify_and_cert_path(tmp_path: Path) -> None:
    certs = _certs(tmp_path / "certs")
    found = endpoint_from_env({"DOCKER_HOST": "tcp://h:2376", "DOCKER_TLS_VERIFY": "1",
                               "DOCKER_CERT_PATH": str(certs)}, tmp_path)
    assert found.tls == TLSSettings(verify=True, ca=str(certs / "ca.pem"),
                                    cert=str(certs / "cert.pem"), key=str(certs / "key.pem"))


def test_tls_verify_without_cert_path_reads_home_docker(tmp_path: Path) -> None:
    certs = _certs(tmp_path / ".docker")
    found = endpoint_from_env({"DOCKER_HOST": "tcp://h", "DOCKER_TLS_VERIFY": "1"}, tmp_path)
    assert found.port == 2376 and found.tls is not None
    assert found.tls.verify and found.tls.ca == str(certs / "ca.pem")


def test_cert_path_without_verify_is_tls_without_verification(tmp_path: Path) -> None:
    certs = _certs(tmp_path / "c")
    found = endpoint_from_env({"DOCKER_HOST": "tcp://h", "DOCKER_CERT_PATH": str(certs)}, tmp_path)
    assert found.tls is not None and not found.tls.verify and found.tls.cert


def test_plain_docker_host_has_no_tls(tmp_path: Path) -> None:
    assert endpoint_from_env({"DOCKER_HOST": "tcp://h:2375"}, tmp_path).tls is None


def _context(home: Path, name: str, host: str, skip: bool = False, tls: bool = False) -> None:
    digest = hashlib.sha256(name.encode()).hexdigest()
    meta = home / ".docker" / "contexts" / "meta" / digest
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(json.dumps({
        "Name": name, "Metadata": {}, "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": skip}}}))
    if tls:
        _certs(home / ".docker" / "contexts" / "tls" / digest / "docker")


def test_current_context_from_config(tmp_path: Path) -> None:
    _context(tmp_path, "remote", "unix:///run/remote.sock")
    (tmp_path / ".docker" / "config.json").write_text(json.dumps({"currentContext": "remote"}))
    assert endpoint_from_env({}, tmp_path).path == "/run/remote.sock"


def test_docker_context_env_beats_config_and_docker_host_beats_both(tmp_path: Path) -> None:
    _context(tmp_path, "a", "unix:///a.sock")
    _context(tmp_path, "b", "tcp://b.example:2376", tls=True)
    (tmp_path / ".docker" / "config.json").write_text(json.dumps({"currentContext": "a"}))
    found = endpoint_from_env({"DOCKER_CONTEXT": "b"}, tmp_path)
    assert (found.host, found.port) == ("b.example", 2376)
    assert found.tls is not None and found.tls.verify and found.tls.cert
    assert endpoint_from_env({"DOCKER_CONTEXT": "b", "DOCKER_HOST": "unix:///h.sock"},
                             tmp_path).path == "/h.sock"


def test_context_skip_tls_verify(tmp_path: Path) -> None:
    _context(tmp_path, "lab", "tcp://lab:2376", skip=True)
    found = endpoint_from_env({"DOCKER_CONTEXT": "lab"}, tmp_path)
    assert found.tls == TLSSettings(verify=False)


def test_docker_config_env_moves_the_config_directory(tmp_path: Path) -> None:
    _context(tmp_path, "x", "unix:///x.sock")
    moved = tmp_path / "elsewhere"
    (tmp_path / ".docker").rename(moved)
    (moved / "config.json").write_text(json.dumps({"currentContext": "x"}))
    assert endpoint_from_env({"DOCKER_CONFIG": str(moved)}, tmp_path / "nohome").path == "/x.sock"


@pytest.mark.parametrize("config", ["{not json", json.dumps({"currentContext": "missing"}),
                                    json.dumps({"currentContext": "default"}), json.dumps([1])])
def test_broken_or_default_context_falls_back_to_the_socket(tmp_path: Path, config: str) -> None:
    (tmp_path / ".docker").mkdir()
    (tmp_path / ".docker" / "config.json").write_text(config)
    assert endpoint_from_env({}, tmp_path).path == "/var/run/docker.sock"


def test_ssh_hosts_are_refused_with_the_way_round(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "ssh://me@build-box")
    with pytest.raises(EngineUnreachable) as caught:
        DockerRuntime()
    assert "ssh -nNT -L" in caught.value.hint and "build-box" in caught.value.hint


def test_an_unusable_docker_host_is_one_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "npipe:////./pipe/docker_engine")
    with pytest.raises(EngineUnreachable, match="cannot be used"):
        DockerRuntime()


# ---------------------------------------------------------------------------------- requests


def test_query_encodes_as_docker_py_does() -> None:
    assert wire.query(None) == ""
    assert wire.query({"all": True, "force": False, "name": None}) == "?all=1&force=0"
    assert wire.query({"changes": ["ENV A=1", "CMD x"]}) == "?changes=ENV+A%3D1&changes=CMD+x"
    filters = wire.query({"filters": {"label": "a=b"}})
    assert json.loads(filters.removeprefix("?filters=").replace("%22", '"').replace("%3A", ":")
                      .replace("%3D", "=").replace("+", " ").replace("%5B", "[").replace("%5D", "]")
                      .replace("%7B", "{").replace("%7D", "}")) == {"label": ["a=b"]}


def test_names_keep_a_reference_readable_in_the_path() -> None:
    assert wire.quote_part("registry:5000/team/app:1") == "registry:5000/team/app:1"
    assert wire.quote_part("a b?c") == "a%20b%3Fc"


def test_host_config_from_docker_py_names() -> None:
    config = bodies.host_config(
        log_config={"Type": "none", "Config": {}}, cap_add=["SYS_PTRACE"], privileged=False,
        pid_mode="container:x", network_mode="container:x", ipc_mode="container:x",
        binds={"v-tools": {"bind": "/bin", "mode": "ro"}}, volumes_from=["t:ro"], read_only=True,
        mem_limit=1 << 26, pids_limit=64, security_opt=["no-new-privileges"], cap_drop=None)
    assert config == {
        "LogConfig": {"Type": "none", "Config": {}}, "CapAdd": ["SYS_PTRACE"], "Privileged": False,
        "PidMode": "container:x", "NetworkMode": "container:x", "IpcMode": "container:x",
        "Binds": ["v-tools:/bin:ro"], "VolumesFrom": ["t:ro"], "ReadonlyRootfs": True,
        "Memory": 1 << 26, "PidsLimit": 64, "SecurityOpt": ["no-new-privileges"]}
    assert bodies.host_config() == {"NetworkMode": "default"}
    with pytest.raises(TypeError):
        bodies.host_config(port_bindings={})


def test_container_config_attaches_as_docker_py_does() -> None:
    body = bodies.container_config("img", command=["-c", "x"], entrypoint=["sh"],
                                   environment={"A": "1"}, stdin_open=True, tty=True)
    assert body["Env"] == ["A=1"] and body["Cmd"] == ["-c", "x"] and body["Entrypoint"] == ["sh"]
    assert (body["AttachStdin"], body["StdinOnce"], body["OpenStdin"], body["AttachStdout"]) == (
        True, True, True, True)
    detached = bodies.container_config("img", detach=True, stdin_open=True)
    assert (detached["AttachStdin"], detached["AttachStdout"], detached["OpenStdin"]) == (
        False, False, True)


# ----------------------------------------------------------------------------------- answers


def test_errors_by_status() -> None:
    missing = engine_errors.api_error(404, engine_errors.explanation_of(404, "Not Found",
                                                          b'{"message":"No such container: x"}\n'))
    assert isinstance(missing, NotFound) and missing.explanation == "No such container: x"
    conflict = engine_errors.api_error(409, engine_errors.explanation_of(409, "Conflict", b""))
    assert type(conflict) is APIError and conflict.status_code == 409
    assert conflict.explanation == "Conflict"
    assert engine_errors.explanation_of(500, "x", b"plain text\n") == "plain text"


def test_a_too_new_client_steps_down_once() -> None:
    client = EngineClient(parse_host("unix:///nowhere.sock"), version="1.41")
    text = "client version 1.41 is too new. Maximum supported API version is 1.40"
    assert client._step_down(text) and client.api_version == "1.40"
    assert not client._step_down(text)  # no lower: the error stands
    assert not client._step_down("some other 400")


def test_progress_objects_across_chunk_boundaries() -> None:
    stream = b'{"status":"Pulling"}\r\n{"status":"Down' + b'loading","progress":"[=> ]"}\n{"id":"a"}'

    class Drip(io.RawIOBase):
        def __init__(self) -> None:
            self.left = stream

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            piece, self.left = self.left[:7], self.left[7:]
            buffer[: len(piece)] = piece
            return len(piece)

    found = list(wire.json_objects(io.BufferedReader(Drip(), buffer_size=7)))
    assert found == [{"status": "Pulling"}, {"status": "Downloading", "progress": "[=> ]"},
                     {"id": "a"}]


def test_a_progress_error_is_an_api_error() -> None:
    with pytest.raises(APIError, match="manifest unknown"):
        wire.raise_progress_error({"errorDetail": {"message": "manifest unknown"},
                                      "error": "manifest unknown"})


def test_path_stat_header() -> None:
    stat = {"name": "etc", "size": 4096, "mode": 2147484141}
    assert wire.decode_path_stat(base64.b64encode(json.dumps(stat).encode()).decode()) == stat
    assert wire.decode_path_stat(None) == {} and wire.decode_path_stat("!!") == {}


def test_demultiplex_logs() -> None:
    frames = b"\x01\x00\x00\x00\x00\x00\x00\x03out" + b"\x02\x00\x00\x00\x00\x00\x00\x04err\n"
    assert wire.demultiplex(frames) == b"outerr\n"


def test_registry_auth_from_inline_credentials(tmp_path: Path) -> None:
    (tmp_path / ".docker").mkdir()
    (tmp_path / ".docker" / "config.json").write_text(json.dumps({"auths": {
        "registry.example:5000": {"auth": base64.b64encode(b"me:secret").decode()}}}))

    def decoded(repo: str) -> object:
        return json.loads(base64.urlsafe_b64decode(registry_auth(repo, {}, tmp_path)))

    assert decoded("registry.example:5000/team/app") == {
        "username": "me", "password": "secret", "serveraddress": "registry.example:5000"}
    assert decoded("busybox") == {} and decoded("library/busybox") == {}


# --------------------------------------------------------------------------- error mapping


@pytest.mark.parametrize(("raised", "ours", "words"), [
    (NotFound(404, "No such container: x"), NoSuchTarget, "was not found"),
    (APIError(409, "Conflict. The container name is already in use"), SidecarFailed, "refused"),
    (APIError(500, "multiple IDs found with provided prefix: ab"), AmbiguousTarget, "ambiguous"),
    (engine_errors.EngineUnreachable("refused"), EngineUnreachable, "No Docker engine answers"),
    (engine_errors.EngineUnreachable("x", permission=True), PermissionDenied, "Permission denied"),
    (PermissionError(13, "Permission denied"), PermissionDenied, "Permission denied"),
])
def test_translate(raised: Exception, ours: type[Exception], words: str) -> None:
    with pytest.raises(ours, match=words), translate("unix:///s.sock", "container 'x'"):
        raise raised
