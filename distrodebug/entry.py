"""The console scripts' entry point: import the command line under a Ctrl-C handler.

`distrodebug.cli` imports typer and more (a tenth of a second or so); an interrupt then would
otherwise end in a KeyboardInterrupt traceback before any handler of ours exists.
"""

from __future__ import annotations

import sys
from typing import NoReturn


def main() -> NoReturn:
    try:
        from distrodebug.cli import main as run
    except KeyboardInterrupt:
        sys.stderr.write("distrodebug: interrupted while starting; nothing was done.\n")
        raise SystemExit(130) from None
    run()
