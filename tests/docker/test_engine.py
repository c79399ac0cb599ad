"""Our engine client (distrodebug/runtimes/docker/engine/) against the real engine: big answers on
the kept connection, chunked archive streams both ways, a hijacked attach and exec carrying stdin
and stdout, the error statuses, the version step-down, a timeout the connection survives."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import tarfile
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from distrodebug.model import STDERR
from distrodebug.runtimes.docker.engine.client import EngineClient
from distrodebug.runtimes.docker.engine.endpoint import endpoint_from_env, parse_host
from distrodebug.runtimes.docker.engine.errors import APIError, EngineUnreachable, NotFound
from distrodebug.runtimes.docker.stream import DockerStream
from tests.conftest import TEST_LABEL
from tests.fixtures.engine import lane

pytestmark = [pytest.mark.engine]


@pytest.fixture
def client(engine: Any) -> Iterator[EngineClient]:
    made = EngineClient(endpoint_from_env())
    yield made
    made.close()


@pytest.fixture
def new_container(client: EngineClient) -> Iterator[Any]:
    """Create a test-labelled container with our client; all are removed after the test."""
    made: list[str] = []

    def create(image: str, argv: list[str], **options: Any) -> str:
        labels = {TEST_LABEL: "1", **options.pop("labels", {})}
        created = client.create_container(image, name=f"ddtest-{uuid.uuid4().hex[:8]}",
                                          entrypoint=argv[:1], command=argv[1:], labels=labels,
                                          **options)
        made.append(created["Id"])
        return str(created["Id"])

    yield create
    for ident in made:
        try:
            client.remove_container(ident, force=True, v=True)
        except APIError:
            pass


def _tar_of(name: str, content: bytes) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        entry = tarfile.TarInfo(name)
        entry.size, entry.mode = len(content), 0o644
        tar.addfile(entry, io.BytesIO(content))
    return out.getvalue()


def test_an_answer_bigger_than_a_pipe_buffer_on_the_kept_connection(
        client: EngineClient, new_container: Any, toolbox: str) -> None:
    labels = {f"io.distrodebug.test.big{i}": "x" * 1000 for i in range(300)}  # about 320 KB
    ident = new_container(toolbox, ["true"], labels=labels)
    client.inspect_container(ident)
    kept = client._conn
    assert kept is not None and kept.sock is not None
    sock = kept.sock
    data = client.inspect_container(ident)
    assert len(str(data)) > 300_000
    assert {k: v for k, v in data["Config"]["Labels"].items() if "big" in k} == labels
    assert client.version()["ApiVersion"]
    assert client._conn is kept and kept.sock is sock, "a second connection was opened"


def test_archives_stream_chunked_both_ways(client: EngineClient, new_container: Any,
                                          toolbox: str) -> None:
    content = os.urandom(8 << 20)
    ident = new_container(toolbox, ["true"])
    # A file body has no length: it goes out chunked, a megabyte a chunk.
    client.put_archive(ident, "/tmp", io.BytesIO(_tar_of("big.bin", content)))
    stream, stat = client.get_archive(ident, "/tmp/big.bin")
    with stream:
        assert stream.headers.get("Transfer-Encoding") == "chunked"
        pieces = list(stream.chunks(1 << 16))
    assert stat["size"] == len(content) and len(pieces) > 100
    with tarfile.open(fileobj=io.BytesIO(b"".join(pieces))) as tar:
        member = tar.extractfile("big.bin")
        assert member is not None
        assert hashlib.sha256(member.read()).digest() == hashlib.sha256(content).digest()
    assert client.archive_stat(ident, "/tmp/big.bin")["size"] == len(content)
    assert int(client.archive_stat(ident, "/tmp")["mode"]) & (1 << 31)  # a directory
    with pytest.raises(NotFound):
        client.archive_stat(ident, "/no/such/path")
    # A stream closed half read ends there; the kept connection never saw it.
    stream, _ = client.get_archive(ident, "/tmp/big.bin")
    assert len(stream.read(1000)) == 1000
    stream.close()
    assert client.inspect_container(ident)["Id"] == ident


def _pump(stream: DockerStream, payload: bytes) -> tuple[bytes, bytes]:
    """Send payload (then end stdin) while reading stdout and stderr until the stream ends."""
    def send() -> None:
        for start in range(0, len(payload), 1 << 16):
            stream.send(payload[start : start + (1 << 16)])
        stream.close_write()

    sender = threading.Thread(target=send)
    sender.start()
    out, err = bytearray(), bytearray()
    while frames := stream.recv():
        for channel, data in frames:
            (err if channel == STDERR else out).extend(data)
    sender.join()
    return bytes(out), bytes(err)


def test_a_hijacked_attach_carries_stdin_and_stdout_both_ways(
        client: EngineClient, new_container: Any, toolbox: str) -> None:
    ident = new_container(toolbox, ["sh", "-c", "cat; echo bye >&2"], stdin_open=True)
    sock = client.attach_socket(ident, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
    stream = DockerStream(sock, False)
    client.start(ident)
    payload = os.urandom(1 << 20)  # larger than every pipe and socket buffer on the way
    out, err = _pump(stream, payload)
    stream.close()
    assert out == payload and err == b"bye\n"
    assert client.wait(ident)["StatusCode"] == 0


def test_logs_without_frame_headers(client: EngineClient, new_container: Any, toolbox: str) -> None:
    ident = new_container(toolbox, ["sh", "-c", "echo out; sleep 0.2; echo err >&2"])
    client.start(ident)
    assert client.wait(ident)["StatusCode"] == 0
    assert client.logs(ident, tail=10) == b"out\nerr\n"
    stamped = client.logs(ident, tail=1, timestamps=True)
    assert stamped.endswith(b" err\n") and stamped[:2] == b"20"


def test_a_hijacked_exec_in_a_running_container(client: EngineClient, new_container: Any,
                                               toolbox: str) -> None:
    ident = new_container(toolbox, ["sleep", "60"])
    client.start(ident)
    created = client.exec_create(ident, ["sh", "-c", "tr a-z A-Z; exit 3"], stdin=True)
    out, _ = _pump(DockerStream(client.exec_start(created["Id"]), False), b"hello engine\n" * 5000)
    assert out == b"HELLO ENGINE\n" * 5000


def test_not_found_and_conflict(client: EngineClient, new_container: Any, toolbox: str) -> None:
    with pytest.raises(NotFound) as missing:
        client.inspect_container(f"ddtest-none-{uuid.uuid4().hex}")
    assert missing.value.status_code == 404 and "no such container" in missing.value.explanation.lower()
    ident = new_container(toolbox, ["sleep", "60"])
    name = client.inspect_container(ident)["Name"].lstrip("/")
    with pytest.raises(APIError) as taken:
        client.create_container(toolbox, name=name, labels={TEST_LABEL: "1"})
    assert taken.value.status_code == 409 and "already in use" in taken.value.explanation
    client.start(ident)
    with pytest.raises(APIError) as running:
        client.remove_container(ident)
    assert running.value.status_code == 409
    assert client.inspect_container(ident)["State"]["Running"]  # the connection is still good


def test_a_version_newer_than_the_engine_steps_down(engine: Any) -> None:
    newest = str(engine.version()["ApiVersion"])
    client = EngineClient(endpoint_from_env(), version="9.99")
    try:
        assert client.info()["ID"]
        if lane() == "docker":  # Docker refuses a newer client; Podman takes any version
            assert client.api_version == newest
    finally:
        client.close()


def test_a_wait_that_times_out_leaves_a_working_client(client: EngineClient, new_container: Any,
                                                      toolbox: str) -> None:
    ident = new_container(toolbox, ["sleep", "60"])
    client.start(ident)
    with pytest.raises(EngineUnreachable) as caught:
        client.wait(ident, timeout=0.5)
    assert caught.value.timeout
    assert client.inspect_container(ident)["State"]["Running"]
    client.stop(ident, timeout=0)
    assert client.wait(ident, timeout=30)["StatusCode"] != 0


def test_an_interrupt_mid_answer_leaves_a_working_client(client: EngineClient, new_container: Any,
                                                        toolbox: str) -> None:
    """Ctrl-C while an answer is awaited on the kept connection: the cleanup that follows must
    not read the rest of that answer as its own."""
    ident = new_container(toolbox, ["sleep", "60"])
    client.start(ident)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        client.wait(ident, timeout=30)
    timer.join()
    assert client.inspect_container(ident)["State"]["Running"]
    client.stop(ident, timeout=0)


def test_images_volumes_and_commit(client: EngineClient, new_container: Any, toolbox: str,
                                   tmp_path: Any) -> None:
    tag = uuid.uuid4().hex[:8]
    rootfs = tmp_path / "rootfs.tar"
    rootfs.write_bytes(_tar_of("hello.txt", b"hi\n"))
    ref = f"distrodebug-test/engine-import:{tag}"
    volume = f"ddtest-engine-{tag}"
    made: list[str] = []
    try:
        client.import_image_from_file(str(rootfs), repository=ref, changes=['CMD ["/x"]'])
        made.append(ref)
        data = client.inspect_image(ref)
        assert data["Config"]["Cmd"] == ["/x"]
        client.tag(ref, "distrodebug-test/engine-import", f"{tag}-again", force=True)
        made.append(f"distrodebug-test/engine-import:{tag}-again")
        with client.export_image(ref) as saved:
            assert tarfile.open(fileobj=io.BytesIO(saved.read())).getnames()
        client.create_volume(volume, labels={TEST_LABEL: tag})
        listed = client.volumes(filters={"label": f"{TEST_LABEL}={tag}"})["Volumes"]
        assert [v["Name"] for v in listed] == [volume]
        ident = new_container(toolbox, ["true"])
        committed = client.commit(ident, repository="distrodebug-test/engine-import",
                                  tag=f"{tag}-committed", conf={"Labels": {TEST_LABEL: tag}}, pause=False)
        made.append(str(committed["Id"]))
        assert committed["Id"].startswith("sha256:")  # Podman's bare ID given Docker's form
        found = client.images(filters={"label": f"{TEST_LABEL}={tag}"})
        assert [i["Id"] for i in found] == [committed["Id"]]
    finally:
        for image in reversed(made):
            client.remove_image(image, force=True)
        client.remove_volume(volume, force=True)
    with pytest.raises(NotFound):
        client.inspect_image(ref)


def test_no_engine_is_engine_unreachable(tmp_path: Any) -> None:
    client = EngineClient(parse_host(f"unix://{tmp_path}/none.sock"))
    with pytest.raises(EngineUnreachable) as caught:
        client.ping()
    assert not caught.value.permission
