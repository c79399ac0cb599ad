"""The quick lane: `distrodebug exec TARGET [--] COMMAND...` without options, parsed without typer.

exec is what scripts and on-call loops run again and again, so its start-up counts: typer and
its click take a good 50 ms to import and to parse (issue 12). A plain exec (a target, then the
command) is recognised here and runs the very same session as the typer command would; any
option, --help, or anything unusual falls through to typer (app.py), which owns every message
about the command line. Nothing here imports typer or rich.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:  # imported when a session runs: plain_exec runs before every command
    from distrodebug.model import DebugOptions
    from distrodebug.target import Target


def plain_exec(args: list[str]) -> tuple[str, tuple[str, ...]] | None:
    """(target, command) for `exec TARGET [--] COMMAND...` with no option of ours, else None."""
    if len(args) < 3 or args[0] != "exec" or not args[1] or args[1].startswith("-"):
        return None
    rest = args[2:]
    if "--" in rest:
        # Options may sit between the target and `--` (kubectl's habit): typer's to read.
        command = rest[1:] if rest[0] == "--" else []
    else:
        # Without `--` every word after the target is the command, as app.split_exec_command
        # has it, except that app.main takes --debug out even there.
        command = [] if "--debug" in rest else rest
    return (args[1], tuple(command)) if command else None


def session(target: Target, command: tuple[str, ...] | None, image: str | None,
            options: DebugOptions, stdin: bool | None, context: str | None) -> int:
    """Run one shell or exec session as the command line asked; its exit status."""
    from distrodebug import session as flow
    from distrodebug.cli import console
    from distrodebug.runtimes import open_runtime
    from distrodebug.settings import load_settings

    request = flow.SessionRequest(target=target, command=command, options=options, stdin=stdin)
    settings = load_settings(image, options.timeout)
    ui = console.UI(options.quiet)
    result = flow.run(request, open_runtime(target, context), settings, ui)
    from distrodebug.model import Answer

    for note in result.notes:
        # How to attach is the answer to --attach=false, not a message that --quiet silences.
        (console.notice if isinstance(note, Answer) else ui.notice)(f"distrodebug: {note}")
    return result.exit_code


def run_exec(target: str, command: tuple[str, ...]) -> NoReturn:
    """The plain exec, with the errors and exit codes app.main gives the typer route."""
    from distrodebug.cli import console
    from distrodebug.cli.witness import remember_argv, witnessed
    from distrodebug.cli.words import debug_options, resolve
    from distrodebug.errors import DistrodebugError, ExitCode

    remember_argv(sys.argv[1:])
    try:
        resolved = resolve(target, None, None, None)
        options = debug_options(resolved)
        with witnessed("exec", resolved, None, quiet=options.quiet) as outcome:
            outcome.code = session(resolved, command, None, options, None, None)
        code = outcome.code
    except DistrodebugError as exc:
        console.error(exc.paragraph())
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        console.error("Interrupted; nothing was left behind.")
        raise SystemExit(ExitCode.INTERRUPTED) from None
    sys.exit(code)
