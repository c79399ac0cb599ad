"""The engine over tcp:// with TLS (DOCKER_TLS_VERIFY, DOCKER_CERT_PATH) and through a docker context
with TLS files: a real TLS listener that requires our client certificate, in front of the engine."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from distrodebug.model import STDERR
from distrodebug.runtimes.docker.engine.client import EngineClient
from distrodebug.runtimes.docker.engine.endpoint import endpoint_from_env
from distrodebug.runtimes.docker.engine.errors import EngineUnreachable
from distrodebug.runtimes.docker.stream import DockerStream
from tests.conftest import TEST_LABEL
from tests.fixtures.tlsproxy import TLSProxy, make_certs

pytestmark = [pytest.mark.engine]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl to make certificates")
    return make_certs(tmp_path_factory.mktemp("tls") / "certs")


@pytest.fixture
def proxy(engine: Any, certs: Path) -> Iterator[TLSProxy]:
    socket_path = endpoint_from_env().path
    if not socket_path:
        pytest.skip("the engine is not on a unix socket to put TLS in front of")
    made = TLSProxy(certs, socket_path)
    yield made
    made.close()


def tls_env(proxy: TLSProxy, certs: Path) -> dict[str, str]:
    return {"DOCKER_HOST": f"tcp://127.0.0.1:{proxy.port}", "DOCKER_TLS_VERIFY": "1",
            "DOCKER_CERT_PATH": str(certs)}


def test_tls_with_a_client_certificate(proxy: TLSProxy, certs: Path, toolbox: str) -> None:
    client = EngineClient(endpoint_from_env(tls_env(proxy, certs), Path("/nonexistent")))
    ident = ""
    try:
        assert client.version()["ApiVersion"]
        ident = client.create_container(
            toolbox, name=f"ddtest-{uuid.uuid4().hex[:8]}", entrypoint=["sh"],
            command=["-c", "cat; echo done >&2"], stdin_open=True, labels={TEST_LABEL: "1"})["Id"]
        stream = DockerStream(client.attach_socket(ident, params={
            "stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}), False)
        client.start(ident)
        payload = os.urandom(48 << 10)
        stream.send(payload)
        stream.close_write()  # half-closed beneath TLS: the output still comes back through it
        out, err = bytearray(), bytearray()
        while frames := stream.recv():
            for channel, data in frames:
                (err if channel == STDERR else out).extend(data)
        stream.close()
        assert (bytes(out), bytes(err)) == (payload, b"done\n")
        assert client.wait(ident)["StatusCode"] == 0
        archive, _ = client.get_archive(ident, "/bin")
        with archive:
            assert len(hashlib.sha256(archive.read()).hexdigest()) == 64
    finally:
        if ident:
            client.remove_container(ident, force=True)
        client.close()
    assert proxy.served >= 3 and proxy.refused == 0


def test_a_certificate_from_another_ca_is_refused(proxy: TLSProxy, certs: Path,
                                                  tmp_path: Path) -> None:
    other = make_certs(tmp_path / "other")
    env = {**tls_env(proxy, certs), "DOCKER_CERT_PATH": str(other)}
    client = EngineClient(endpoint_from_env(env, Path("/nonexistent")))
    with pytest.raises(EngineUnreachable) as caught:
        client.version()
    assert caught.value.tls


def test_the_cli_over_tls_and_through_a_docker_context(dd: Any, proxy: TLSProxy, certs: Path,
                                                        make_container: Any, static_image: str,
                                                        tmp_path: Path) -> None:
    target = make_container(static_image)
    ran = dd("exec", target.name, "--", "sh", "-c", "cat; echo to-stderr >&2; exit 4",
             input="through TLS\n", env=tls_env(proxy, certs))
    assert (ran.code, ran.out) == (4, "through TLS\n"), ran.err
    assert "to-stderr" in ran.err

    # The same engine as a docker context: its host in meta.json, its TLS files beside it.
    config = tmp_path / "docker-config"
    digest = hashlib.sha256(b"tls-test").hexdigest()
    meta = config / "contexts" / "meta" / digest
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(json.dumps({"Name": "tls-test", "Metadata": {}, "Endpoints": {
        "docker": {"Host": f"tcp://127.0.0.1:{proxy.port}", "SkipTLSVerify": False}}}))
    shutil.copytree(certs, config / "contexts" / "tls" / digest / "docker")
    (config / "config.json").write_text(json.dumps({"currentContext": "tls-test"}))
    env = {"DOCKER_CONFIG": str(config), "DOCKER_HOST": ""}  # empty is unset, as for the CLI
    ran = dd("exec", target.name, "--", "echo", "via context", env=env)
    assert (ran.code, ran.out) == (0, "via context\n"), ran.err

    wrong = {**tls_env(proxy, certs), "DOCKER_CERT_PATH": str(tmp_path / "none")}
    ran = dd("exec", target.name, "--", "true", env=wrong)
    assert ran.code == 125 and "TLS handshake" in ran.err and "Traceback" not in ran.err
