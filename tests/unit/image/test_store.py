"""The layer-store route's checks, on a store laid out in a temporary directory as Docker's overlay2
lays it out: every mismatch sends `image` back to `docker save` (auto) or ends it in words (store).
The route itself, on the engine's real store, is tested in tests/docker/test_image_store.py."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from distrodebug.errors import DistrodebugError
from distrodebug.image.report import check
from distrodebug.image.store import chain_ids, locate
from tests.fixtures.layered import FAKE_KEY, Layer, directory, file, saved_archive, tool

PASSWD = b"root:x:0:0:root:/root:/sbin/nologin\n"
LAYERS = [Layer("COPY rootfs /", [directory("etc"), file("etc/passwd", PASSWD), tool("app")]),
          Layer("COPY key /", [directory("keys"), file("keys/deploy.pem", FAKE_KEY), tool("bin/sh")])]


def build_store(root: Path, files: list[dict[str, bytes]]) -> dict[str, Any]:
    """A Docker-shaped store under ``root`` holding one image whose layers hold ``files``; the
    inspect document the engine would give for it."""
    diff_ids = [f"sha256:{hashlib.sha256(str(i).encode()).hexdigest()}" for i in range(len(files))]
    config = {"config": {"User": "65532"}, "rootfs": {"type": "layers", "diff_ids": diff_ids},
              "history": [{"created_by": f"COPY layer{i} /"} for i in range(len(files))]}
    raw = json.dumps(config).encode()
    image_hex = hashlib.sha256(raw).hexdigest()
    content = root / "image/overlay2/imagedb/content/sha256"
    content.mkdir(parents=True)
    (content / image_hex).write_bytes(raw)
    upper = ""
    for index, (diff_id, chain) in enumerate(zip(diff_ids, chain_ids(diff_ids), strict=True)):
        record = root / "image/overlay2/layerdb/sha256" / chain.split(":")[1]
        record.mkdir(parents=True)
        (record / "diff").write_text(diff_id)
        (record / "cache-id").write_text(f"cache{index}")
        (record / "size").write_text(str(sum(len(v) for v in files[index].values())))
        diff = root / "overlay2" / f"cache{index}" / "diff"
        for name, data in files[index].items():
            (diff / name).parent.mkdir(parents=True, exist_ok=True)
            (diff / name).write_bytes(data)
            if name in ("app", "bin/sh"):
                (diff / name).chmod(0o755)
        upper = str(diff)
    return {"Id": f"sha256:{image_hex}", "GraphDriver": {"Name": "overlay2", "Data": {"UpperDir": upper}}}


class Engine:
    endpoint = "unix:///fake.sock"

    def __init__(self, inspect: dict[str, Any], store: tuple[str, str] | None,
                 archive: bytes = b"") -> None:
        self.inspect, self.store, self.archive, self.saves = inspect, store, archive, 0

    def local_image(self, ref: str) -> dict[str, Any]:
        return self.inspect

    @contextlib.contextmanager
    def save_image(self, image_id: str) -> Iterator[BinaryIO]:
        self.saves += 1
        yield io.BufferedReader(io.BytesIO(self.archive))  # type: ignore[arg-type]

    def server_version(self) -> str:
        return "Docker 20.10.24"

    def layer_store(self) -> tuple[str, str] | None:
        return self.store


FILES = [{"etc/passwd": PASSWD, "app": b"\x7fELF"}, {"keys/deploy.pem": FAKE_KEY, "bin/sh": b"\x7fELF"}]


def test_a_store_that_checks_out_is_read_without_saving(tmp_path: Path) -> None:
    inspect = build_store(tmp_path, FILES)
    engine = Engine(inspect, (str(tmp_path), "overlay2"))
    report = check("test:1", engine, read="store")
    assert engine.saves == 0 and report.read_from == "layer store"
    found = {f.rule: [i.path for i in f.items] for f in report.findings}
    assert found == {"private-key": ["/keys/deploy.pem"], "shell": ["/bin/sh"]}
    assert [layer.tar_bytes for layer in report.layers] == [len(PASSWD) + 4, len(FAKE_KEY) + 4]
    assert [layer.instruction for layer in report.layers] == ["COPY layer0 /", "COPY layer1 /"]


def tamper_config(root: Path, inspect: dict[str, Any]) -> None:
    path = root / "image/overlay2/imagedb/content/sha256" / inspect["Id"].split(":")[1]
    path.write_bytes(path.read_bytes().replace(b"65532", b"0"))


def tamper_diff(root: Path, inspect: dict[str, Any]) -> None:
    next(root.glob("image/overlay2/layerdb/sha256/*/diff")).write_text("sha256:" + "0" * 64)


def escape_cache_id(root: Path, inspect: dict[str, Any]) -> None:
    next(root.glob("image/overlay2/layerdb/sha256/*/cache-id")).write_text("../../etc")


def other_upper(root: Path, inspect: dict[str, Any]) -> None:
    inspect["GraphDriver"]["Data"]["UpperDir"] = "/var/lib/docker/overlay2/other/diff"


def linked_config(root: Path, inspect: dict[str, Any]) -> None:
    path = root / "image/overlay2/imagedb/content/sha256" / inspect["Id"].split(":")[1]
    real = root / "elsewhere"
    real.write_bytes(path.read_bytes())
    path.unlink()
    path.symlink_to(real)


@pytest.mark.parametrize("damage", [tamper_config, tamper_diff, escape_cache_id, other_upper, linked_config])
def test_any_mismatch_falls_back_to_docker_save(tmp_path: Path, damage: Any) -> None:
    inspect = build_store(tmp_path, FILES)
    damage(tmp_path, inspect)
    assert locate(str(tmp_path), "overlay2", inspect) is None
    archive, image_id = saved_archive(LAYERS, user="65532")
    engine = Engine({**inspect, "Id": image_id}, (str(tmp_path), "overlay2"), archive)
    report = check("test:1", engine)
    assert engine.saves == 1 and report.read_from == "docker save"
    with pytest.raises(DistrodebugError, match="not readable here, or does not hold it"):
        check("test:1", engine, read="store")


def test_no_local_store_and_other_drivers(tmp_path: Path) -> None:
    inspect = build_store(tmp_path, FILES)
    assert locate(str(tmp_path), "vfs", inspect) is None
    archive, image_id = saved_archive(LAYERS, user="65532")
    engine = Engine({"Id": image_id}, None, archive)
    assert check("test:1", engine).read_from == "docker save"
    with pytest.raises(DistrodebugError, match="does not run on this machine"):
        check("test:1", engine, read="store")


def test_chain_ids_as_the_layer_db_names_them() -> None:
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    assert chain_ids([a]) == [a]
    assert chain_ids([a, b])[1] == "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()
