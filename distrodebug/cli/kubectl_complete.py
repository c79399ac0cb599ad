"""`kubectl_complete-distrodebug`: Tab completion for `kubectl distrodebug ...`.

kubectl (1.26 and later) completes a plugin's arguments by running an executable named
``kubectl_complete-<plugin>`` found on PATH, with the words typed after the plugin's name; the
last word is the one being completed (empty for a new word). It shows what that prints, one
candidate per line; a last line ``:N`` is a cobra directive (4: offer no file names). Its stderr
reaches the user's terminal, so this prints nothing there, whatever fails.

The candidates are the ones the shell completion of ``distrodebug`` gives (commands, options,
targets), with targets narrowed to ``pod/NAME``: under kubectl, containers of the local Docker
engine are not what is meant, and asking the engine would only cost time.
"""

from __future__ import annotations

import contextlib
import io
import os
import shlex
import sys
from typing import NoReturn

NO_FILE_NAMES = 4


def candidates(args: list[str]) -> list[str]:
    """What to offer for ``args`` (the words after the plugin's name, the last one incomplete).

    Asked of the command line as bash asks it (the protocol `--install-completion` sets up), so
    that this follows whatever click typer brings.
    """
    from distrodebug.cli.app import app
    from distrodebug.cli.tools import FOR_KUBECTL

    os.environ.update({
        FOR_KUBECTL: "kubectl",
        "_DISTRODEBUG_COMPLETE": "complete_bash",
        "COMP_WORDS": " ".join(["distrodebug", *(shlex.quote(a) for a in args)]),
        "COMP_CWORD": str(max(len(args), 1)),
    })
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        app(args=[], prog_name="distrodebug")
    # One candidate per line: a word holding a line break or a control character would forge
    # candidates or a directive, or write to the terminal. Names from the cluster never do.
    return [w for w in out.getvalue().splitlines() if w and w.isprintable()]


def main() -> NoReturn:
    words: list[str] = []
    with contextlib.suppress(Exception), contextlib.redirect_stderr(io.StringIO()):
        words = candidates(sys.argv[1:])
    out = "".join(f"{w}\n" for w in words)
    # No candidates: let the shell offer file names (cp's local side, dump -f).
    out += f":{NO_FILE_NAMES if words else 0}\n"
    with contextlib.suppress(OSError):
        sys.stdout.write(out)
        sys.stdout.flush()
    raise SystemExit(0)
