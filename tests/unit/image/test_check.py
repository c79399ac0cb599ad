"""`distrodebug image` on archives built in memory, read as if the engine had sent them."""

from __future__ import annotations

import contextlib
import gzip
import io
import tarfile
from collections.abc import Iterator
from typing import Any, BinaryIO

import pytest

from distrodebug.image import rules
from distrodebug.image.layers import Budget
from distrodebug.image.report import ImageReport, check, instruction
from distrodebug.image.rules import Level
from tests.fixtures.layered import (
    FAKE_KEY,
    Entry,
    Layer,
    directory,
    file,
    saved_archive,
    symlink,
    tool,
    whiteout,
)

PASSWD = b"root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532::/home/nonroot:/sbin/nologin\n"
BASE = Layer("COPY /rootfs / # distroless base", [
    directory("etc"), file("etc/passwd", PASSWD), directory("tmp", 0o1777), tool("app"),
    directory("etc/ssl/certs"),
    file("etc/ssl/certs/ca.pem", b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
])


class FakeEngine:
    endpoint = "unix:///fake.sock"

    def __init__(self, archive: bytes, image_id: str) -> None:
        self.archive, self.image_id = archive, image_id

    def local_image(self, ref: str) -> dict[str, Any]:
        return {"Id": self.image_id}

    @contextlib.contextmanager
    def save_image(self, image_id: str) -> Iterator[BinaryIO]:
        assert image_id == self.image_id
        yield io.BufferedReader(io.BytesIO(self.archive))  # type: ignore[arg-type]

    def server_version(self) -> str:
        return "Docker 20.10.24"

    def layer_store(self) -> tuple[str, str] | None:
        return None  # the archive route; the layer store is proven on the engine (test_image_store)


def run(layers: list[Layer], user: str | None = "65532", **kwargs: Any) -> ImageReport:
    archive, image_id = saved_archive(layers, user=user, **kwargs)
    return check("test:1", FakeEngine(archive, image_id), kwargs.pop("budget", None))


def rules_of(report: ImageReport) -> dict[str, list[str]]:
    return {f.rule: [i.path for i in f.items] for f in report.findings}


def test_distroless_image_is_clean_public_certificates_are_not_keys() -> None:
    report = run([BASE])
    assert report.findings == [] and report.worst is None
    assert report.user == "uid 65532"
    assert report.verdict.startswith("only the application")
    assert not report.fails(Level.INFO)


def test_shell_left_in_with_hard_links_and_symlinks() -> None:
    report = run([BASE, Layer("COPY busybox /bin/", [
        directory("bin"), tool("bin/busybox"), Entry("bin/sh", kind="hardlink", link="bin/busybox",
                                                     mode=0o755),
        symlink("bin/ash", "busybox"), symlink("bin/bash", "/nonexistent/bash"),
    ])])
    found = rules_of(report)
    assert found["shell"] == ["/bin/ash", "/bin/busybox", "/bin/sh"]  # the dangling bash runs nothing
    assert report.worst == Level.HIGH and report.fails(Level.HIGH) and not report.fails(Level.CRITICAL)


def test_merged_usr_symlinks_are_followed() -> None:
    report = run([BASE, Layer("RUN apt-get install dash", [
        symlink("bin", "usr/bin"), directory("usr/bin"), tool("usr/bin/dash"),
        symlink("usr/bin/sh", "/bin/dash"),
    ])])
    assert rules_of(report)["shell"] == ["/usr/bin/dash", "/usr/bin/sh"]


def test_setuid_and_setgid_and_world_writable() -> None:
    report = run([BASE, Layer("COPY --from=builder /out /", [
        directory("usr/bin"), tool("usr/bin/helper", 0o4755), tool("usr/bin/mailer", 0o2755),
        directory("data", 0o777), directory("scratch", 0o1777),
    ])])
    found = {f.rule: f for f in report.findings}
    assert [i.path for i in found["setuid"].items] == ["/usr/bin/helper"]
    assert "4755" in found["setuid"].items[0].detail
    assert [i.path for i in found["setgid"].items] == ["/usr/bin/mailer"]
    assert [i.path for i in found["world-writable"].items] == ["/data"]  # /scratch has the sticky bit


def test_a_later_layer_that_drops_the_bit_or_deletes_the_tool_fixes_it() -> None:
    report = run([
        BASE,
        Layer("RUN install", [directory("usr/bin"), tool("usr/bin/helper", 0o4755), tool("usr/bin/curl")]),
        Layer("RUN chmod u-s helper && rm curl", [tool("usr/bin/helper", 0o755), whiteout("usr/bin/curl")]),
    ])
    assert report.findings == []


def test_opaque_directory_hides_the_lower_layers_tools() -> None:
    report = run([
        BASE,
        Layer("RUN install", [directory("opt/tools/bin"), tool("opt/tools/bin/wget")]),
        Layer("RUN rm -rf /opt/tools && mkdir /opt/tools", [directory("opt/tools"),
                                                           file("opt/tools/.wh..wh..opq", b"")]),
    ])
    assert report.findings == []


def test_key_deleted_in_a_later_layer_is_still_in_the_image() -> None:
    report = run([
        BASE,
        Layer("COPY . /src", [directory("src"), file("src/deploy.pem", FAKE_KEY, 0o600),
                              file("src/notes.txt", FAKE_KEY)]),
        Layer("RUN rm /src/deploy.pem /src/notes.txt",
              [whiteout("src/deploy.pem"), whiteout("src/notes.txt")]),
    ])
    finding = next(f for f in report.findings if f.rule == "private-key")
    assert finding.level == Level.CRITICAL
    assert [(i.path, i.layer) for i in finding.items] == [("/src/deploy.pem", 2), ("/src/notes.txt", 2)]
    assert all("deleted in layer 3, but still readable in layer 2" in i.detail for i in finding.items)
    assert report.fails(Level.CRITICAL)


def test_secret_files_named_without_their_content() -> None:
    report = run([BASE, Layer("COPY . /app", [
        file("app/.env", b"DB_PASSWORD=hunter2\n"), file("app/.env.example", b"DB_PASSWORD=\n"),
        file("root/.aws/credentials", b"[default]\naws_secret_access_key=abc\n"),
        file("root/.npmrc", b"//registry.npmjs.org/:_authToken=npm_abc\n"),
        file("home/app/.npmrc", b"registry=https://registry.npmjs.org/\n"),
        file("app/.pypirc", b"[pypi]\nusername = __token__\npassword = pypi-abc\n"),
        directory("app/.git"), file("app/.git/config", b"[core]\n"), file("app/.git/HEAD", b"ref\n"),
        file("root/.ssh/id_ed25519", b"anything"), file("root/.ssh/id_ed25519.pub", b"ssh-ed25519 AAAA"),
    ])])
    found = rules_of(report)
    assert found["cloud-credentials"] == ["/root/.aws/credentials"]
    assert found["private-key"] == ["/root/.ssh/id_ed25519"]
    assert found["token-file"] == ["/app/.env", "/app/.pypirc", "/root/.npmrc"]
    assert found["git-directory"] == ["/app/.git"]
    text = repr(report.to_json())
    assert "hunter2" not in text and "npm_abc" not in text and "pypi-abc" not in text


@pytest.mark.parametrize(("user", "rule", "level"), [
    (None, "root-user", Level.HIGH), ("0", "root-user", Level.HIGH), ("root", "root-user", Level.HIGH),
    ("0:0", "root-user", Level.HIGH), ("nonroot", "named-user", Level.LOW),
    ("nobody", "unknown-user", Level.MEDIUM), ("65532:65532", None, None),
])
def test_the_user_it_runs_as(user: str | None, rule: str | None, level: Level | None) -> None:
    report = run([BASE], user=user)
    assert [f.rule for f in report.findings] == ([rule] if rule else [])
    assert report.worst == level


def test_single_stage_build_leaves_compiler_and_package_manager() -> None:
    report = run([BASE, Layer("/bin/sh -c apt-get install -y gcc make && make", [
        directory("usr/bin"), tool("usr/bin/gcc-12"), symlink("usr/bin/gcc", "gcc-12"),
        tool("usr/bin/x86_64-linux-gnu-gcc-12"), tool("usr/bin/make"), tool("usr/bin/apt-get"),
        tool("usr/local/go/bin/go"), file("usr/share/bash-completion/completions/make", b"# data"),
        file("usr/lib/python3/dist-packages/pip/__init__.py", b""),
        tool("usr/bin/python3.11"),
    ])], empty_steps=("ENV A=1",))
    found = rules_of(report)
    assert found["build-tool"] == ["/usr/bin/gcc", "/usr/bin/gcc-12", "/usr/bin/make",
                                   "/usr/bin/x86_64-linux-gnu-gcc-12", "/usr/local/go/bin/go"]
    assert found["package-manager"] == ["/usr/bin/apt-get", "/usr/lib/python3/dist-packages/pip/__init__.py"]
    assert [layer.instruction for layer in report.layers] == [
        "COPY /rootfs / # distroless base", "RUN apt-get install -y gcc make && make"]
    assert "single-stage" in rules.RULES["build-tool"].fix


def test_layers_in_the_manifests_order_with_sizes_and_largest_files() -> None:
    big = Layer("COPY --from=builder /app /app", [file("app/big.bin", b"z" * 300_000),
                                                    file("app/small.bin", b"z" * 10)])
    report = run([BASE, big, Layer("COPY config /etc/app", [file("etc/app.conf", b"x" * 5)])])
    assert [layer.index for layer in report.layers] == [1, 2, 3]
    assert report.layers[1].largest[0] == (300_000, "app/big.bin")
    assert report.layers[1].content_bytes == 300_010 and report.layers[1].entries == 2
    assert report.layers[2].instruction == "COPY config /etc/app"


def test_compressed_layers_are_read_as_they_stream() -> None:
    archive, image_id = saved_archive([BASE, Layer("RUN x", [directory("bin"), tool("bin/sh")])])
    # Recompress every layer as an OCI archive may carry it.
    src = tarfile.open(fileobj=io.BytesIO(archive))
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()  # type: ignore[union-attr]
            if member.name.endswith("layer.tar"):
                data = gzip.compress(data)
            member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
    report = check("test:1", FakeEngine(out.getvalue(), image_id))
    assert rules_of(report) == {"shell": ["/bin/sh"], "root-user": ["USER"]}


def test_past_the_path_budget_the_report_says_deletions_may_be_missed() -> None:
    archive, image_id = saved_archive([BASE, Layer("RUN x", [file(f"f{i}") for i in range(50)])],
                                      user="65532")
    report = check("test:1", FakeEngine(archive, image_id), Budget(limit=10))
    assert any("not tracked" in note for note in report.notes)


def test_hostile_names_are_escaped_in_the_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    from distrodebug.cli.image import render

    report = run([BASE, Layer("RUN \x1b]0;owned\x07", [directory("bin"), tool("bin/sh\x1b[2J"),
                                                       tool("bin/sh")])])
    render(report)
    out = capsys.readouterr()
    assert "\x1b" not in out.out + out.err
    assert "\\x1b[2J" in out.out


def test_instruction_words() -> None:
    assert instruction({"created_by": "/bin/sh -c #(nop)  CMD [\"/app\"]"}) == 'CMD ["/app"]'
    assert instruction({"created_by": "RUN /bin/sh -c make # buildkit"}) == "RUN make"
    assert instruction({"created_by": "|2 A=1 B=2 /bin/sh -c make"}) == "RUN make"
    assert instruction({"comment": "Imported from -"}) == "Imported from -"


def test_levels_parse() -> None:
    assert Level.parse("High") == Level.HIGH and Level.parse("nope") is None
    assert [level.word for level in Level] == ["info", "low", "medium", "high", "critical"]
