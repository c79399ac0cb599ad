"""The sidecar scripts as text: options reach them, they parse, the stderr protocol parses."""

from __future__ import annotations

import shutil
import subprocess
import tarfile

import pytest

from distrodebug.bundle.options import (
    DumpOptions,
    compile_excludes,
    in_paths,
    is_excluded,
    normalise_path,
)
from distrodebug.bundle.script import (
    MAX_EMBEDDED_PATHS,
    fs_stream_script,
    marker_parts,
    parse_skip_lines,
)
from distrodebug.bundle.tar.reader import MARK_SUFFIX_BATCH

BUSYBOX = shutil.which("busybox")


@pytest.mark.parametrize(
    "options",
    [
        DumpOptions(),
        DumpOptions(paths=("/etc", "/var/log"), excludes=("*.log", "/var/cache/*")),
        DumpOptions(no_volumes=True, max_file_size=1024),
    ],
)
def test_script_is_valid_busybox_shell(options: DumpOptions) -> None:
    script = fs_stream_script(options)
    if BUSYBOX is None:
        pytest.skip("busybox is not installed here")
    subprocess.run([BUSYBOX, "sh", "-n", "-c", script], check=True)


def test_options_reach_the_script() -> None:
    script = fs_stream_script(
        DumpOptions(paths=("/etc",), excludes=("*.pyc", "/srv/tmp"), max_file_size=5000)
    )
    assert "set -- ./etc '(' -path ./proc -o -path ./sys -o -name '*.pyc' -o -path ./srv/tmp" in (script)
    assert "-size +5000c" in script and "novol=0" in script
    assert "novol=1" in fs_stream_script(DumpOptions(no_volumes=True))


def test_changed_only_start_points_and_fallback() -> None:
    script = fs_stream_script(DumpOptions(changed_only=True), ["/etc/passwd", "/app/new"])
    assert "set -- ./etc/passwd ./app/new -maxdepth 0" in script
    many = [f"/d/{'x' * 100}{i}" for i in range(MAX_EMBEDDED_PATHS // 100)]
    script = fs_stream_script(DumpOptions(changed_only=True), many)
    assert "set -- . '('" in script and len(script) < 20_000


def test_marker_checksum_matches_tarfile() -> None:
    nonce = "0123456789abcdef0123456789abcdef"
    middle, tail, base = marker_parts(MARK_SUFFIX_BATCH)
    block = tarfile.TarInfo(nonce + MARK_SUFFIX_BATCH)
    block.mode = 0o644
    expected = block.tobuf(tarfile.USTAR_FORMAT)
    assert int(expected[148:154], 8) == base + sum(map(ord, nonce))


@pytest.mark.skipif(BUSYBOX is None, reason="busybox is not installed here")
def test_marker_printed_by_busybox_is_a_valid_header() -> None:
    nonce = "00112233445566778899aabbccddeeff"
    script = fs_stream_script(DumpOptions())
    marks = script.split("DDMARKS=", 1)[1].split("\nexport", 1)[0]
    total = sum(map(ord, nonce))
    shell = f'DDMARKS={marks}\neval "$DDMARKS"; DDNONCE={nonce}; DDNSUM={total}; batch_mark'
    out = subprocess.run([str(BUSYBOX), "sh", "-c", shell], capture_output=True, check=True)
    assert len(out.stdout) == 512
    info = tarfile.TarInfo.frombuf(out.stdout, "utf-8", "strict")
    assert info.name == nonce + MARK_SUFFIX_BATCH and info.size == 0


def test_parse_skip_lines() -> None:
    lines = [
        "DDSKIP\t./sparse\tlarger than the maximum file size\tfile\t2147483648\n",
        "DDSKIP\t./run/s.sock\tsocket\tsocket",
        "DDSKIP\t./root/x\tPermission denied",
        "DDINFO\tnochroot",
        "tar: something else",
        "DDSKIP\t\tno path",
    ]
    skipped = parse_skip_lines(lines)
    assert [(s.path, s.reason, s.kind, s.size) for s in skipped] == [
        ("./sparse", "larger than the maximum file size", "file", 2147483648),
        ("./run/s.sock", "socket", "socket", None),
        ("./root/x", "Permission denied", None, None),
    ]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("./etc/passwd", "etc/passwd"),
        ("/etc/passwd", "etc/passwd"),
        ("etc//passwd/", "etc/passwd"),
        (".", ""),
        ("/", ""),
        ("a/../../b", None),
        ("..", None),
    ],
)
def test_normalise_path(name: str, expected: str | None) -> None:
    assert normalise_path(name) == expected


@pytest.mark.parametrize(
    ("path", "globs", "excluded"),
    [
        ("var/log/app.log", ("*.log",), True),
        ("var/log", ("*.log",), False),
        ("var/cache/apt/x", ("/var/cache",), True),
        ("srv/var/cache", ("/var/cache",), False),
        ("a/node_modules/b/c.js", ("node_modules",), True),
        ("etc/passwd", (), False),
    ],
)
def test_excludes(path: str, globs: tuple[str, ...], excluded: bool) -> None:
    assert is_excluded(path, compile_excludes(globs)) is excluded


def test_in_paths() -> None:
    assert in_paths("etc/passwd", ("etc",)) and in_paths("etc", ("etc/passwd",))
    assert not in_paths("etcetera", ("etc",)) and in_paths("x", ())
