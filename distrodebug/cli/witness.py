"""The witness every shell, exec, cp and dump runs under: the reason check, the recording switch,
and the audit entry written however the command ends. No typer here: the quick exec lane
(quick.py) runs under it too.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from distrodebug.cli import console
from distrodebug.errors import ExitCode, UsageError
from distrodebug.settings import load_settings
from distrodebug.target import Target

if TYPE_CHECKING:
    from distrodebug.audit.witness import Witness

#: The words of this command line, as main() received them (for the audit entry).
_argv: list[str] = []


def remember_argv(args: list[str]) -> None:
    _argv[:] = args


@dataclass
class Outcome:
    """What the command sets before it returns normally: its exit status."""

    code: int = 0


def check_reason(reason: str | None) -> None:
    """The require_reason setting: refuse before anything is started."""
    if load_settings().require_reason and not (reason and reason.strip()):
        raise UsageError("A reason is required here (the require_reason setting is on), and "
                         "none was given; nothing was started.",
                         "Add --reason 'TEXT' (an incident or ticket number, what you look for).")


@contextlib.contextmanager
def witnessed(command: str, target: Target, reason: str | None, *, record: bool = False,
              quiet: bool = False) -> Iterator[Outcome]:
    """Run the block as one audited command; its entry is written however the block ends."""
    from distrodebug import session
    from distrodebug.audit import log
    from distrodebug.audit.witness import Witness

    check_reason(reason)
    record = record and load_settings().record
    log.ready(recordings=record)
    witness = Witness(command, _argv or sys.argv[1:], target, reason, record=record,
                      ui=console.UI(quiet))
    outcome = Outcome()
    code: int = ExitCode.FAILED
    try:
        with session.witnessed_by(witness):
            yield outcome
        code = outcome.code
    except KeyboardInterrupt:
        code = ExitCode.INTERRUPTED
        raise
    except Exception as exc:
        # Our errors and typer's Exit carry the status the command ends with.
        code = int(getattr(exc, "exit_code", ExitCode.FAILED))
        raise
    finally:
        _finish(witness, code)


def _finish(witness: Witness, code: int) -> None:
    entry = witness.finish(code)
    if witness.recorder is not None:
        witness.ui.notice(f"distrodebug: recorded as {entry['id']} "
                          f"(distrodebug audit show {entry['id']})")
