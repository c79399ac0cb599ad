"""The command line: the only package that imports typer (and, through console.py, rich).

``main`` imports the typer application only when called, so that quick.py's plain exec lane
can be imported without it.
"""

from __future__ import annotations

from typing import NoReturn


def main(argv: list[str] | None = None) -> NoReturn:
    from distrodebug.cli.app import main as run

    run(argv)
