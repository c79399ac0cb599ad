"""The console scripts' entry point: import the command line under a Ctrl-C handler.

`distrodebug.cli.app` imports typer and more (a tenth of a second or so); an interrupt then
would otherwise end in a KeyboardInterrupt traceback before any handler of ours exists. A plain
`exec TARGET -- COMMAND` takes the quick lane (cli/quick.py), which skips typer altogether.
"""

from __future__ import annotations

import sys
from typing import NoReturn


def main() -> NoReturn:
    try:
        from distrodebug.cli import quick

        plain = quick.plain_exec(sys.argv[1:])
        if plain is None:
            from distrodebug.cli.app import main as run
    except KeyboardInterrupt:
        sys.stderr.write("distrodebug: interrupted while starting; nothing was done.\n")
        raise SystemExit(130) from None
    if plain is not None:
        quick.run_exec(*plain)
    run()
