"""The quick exec lane takes only what typer would read the same way (issue 12)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from distrodebug.cli.quick import plain_exec


@pytest.mark.parametrize(("args", "expected"), [
    (["exec", "web", "--", "ps", "-ef"], ("web", ("ps", "-ef"))),
    (["exec", "web", "ps", "-c", "x"], ("web", ("ps", "-c", "x"))),
    (["exec", "pod/api", "--", "true"], ("pod/api", ("true",))),
    (["exec", "web", "--", "--", "x"], ("web", ("--", "x"))),
])
def test_plain_exec_is_taken(args: list[str], expected: tuple[str, tuple[str, ...]]) -> None:
    assert plain_exec(args) == expected


@pytest.mark.parametrize("args", [
    ["exec", "web", "-n", "ns", "--", "true"],  # an option before --: typer's
    ["exec", "-i", "web", "--", "cat"],
    ["exec", "web"],
    ["exec", "web", "--"],
    ["exec", "--help"],
    ["exec", "web", "--debug"],
    ["shell", "web", "--", "true"],
    ["exec", "", "--", "true"],
])
def test_anything_else_goes_to_typer(args: list[str]) -> None:
    assert plain_exec(args) is None


def test_the_quick_lane_imports_neither_typer_nor_rich_nor_docker() -> None:
    """A plain exec of a target that does not parse still answers, without the heavy imports."""
    code = ("import sys\nsys.argv = ['distrodebug', 'exec', 'bad name!', '--', 'true']\n"
            "from distrodebug.entry import main\n"
            "try:\n    main()\nexcept SystemExit as exc:\n"
            "    heavy = sorted(m for m in ('typer', 'rich', 'click', 'docker', 'requests')"
            " if m in sys.modules)\n"
            "    print(exc.code, heavy)\n")
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert ran.stdout.strip() == "2 []", (ran.stdout, ran.stderr)  # ExitCode.USAGE
    assert "distrodebug: error:" in ran.stderr and "Traceback" not in ran.stderr
