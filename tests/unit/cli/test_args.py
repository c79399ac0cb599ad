from __future__ import annotations

import pytest

from distrodebug.cli.app import split_exec_command


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["exec", "web", "sh", "-c", "x"], ["exec", "web", "--", "sh", "-c", "x"]),
        (["exec", "-n", "prod", "pod/api", "ls", "-la"],
         ["exec", "-n", "prod", "pod/api", "--", "ls", "-la"]),
        (["exec", "--privileged", "web", "id"], ["exec", "--privileged", "web", "--", "id"]),
        (["exec", "--image=x", "web", "id"], ["exec", "--image=x", "web", "--", "id"]),
        (["exec", "pod/api", "-c", "app", "--", "ls"], ["exec", "pod/api", "-c", "app", "--", "ls"]),
        (["shell", "web"], ["shell", "web"]),
    ],
)
def test_exec_command_is_never_parsed_as_our_options(args: list[str], expected: list[str]) -> None:
    assert split_exec_command(args) == expected
