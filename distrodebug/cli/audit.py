"""`audit verify`, `audit list` and `audit show`, and the options that feed the witness every
shell, exec, cp and dump runs under (witness.py).
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from distrodebug.cli import console
from distrodebug.cli.options import OutputOpt
from distrodebug.cli.words import wants_json
from distrodebug.errors import ExitCode, UsageError

audit_app = typer.Typer(
    name="audit",
    help="The audit log of shell, exec, cp and dump, and the recordings of shells.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

ReasonOpt = Annotated[
    str | None,
    typer.Option("--reason", help="Why: kept in the audit log (and the pod's Event on Kubernetes)."),
]
NoRecordOpt = Annotated[
    bool, typer.Option("--no-record", help="Do not record this shell (the audit entry is kept).")
]

@audit_app.command("verify")
def verify(output: OutputOpt = "text") -> None:
    """Check the audit log's hash chain and every recording it names; exit 1 at the first break."""
    json_out = wants_json(output)
    from distrodebug.audit import log

    verdict = log.verify()
    if json_out:
        console.emit_json("audit-verify", verdict.to_json())
    elif verdict.ok:
        for note in verdict.notes:
            console.notice(f"note: {note}")
        console.notice(f"{console.printable(verdict.path)}: {verdict.entries} entries and "
                       f"{verdict.recordings} recordings intact")
    else:
        console.error(
            f"The audit log {console.printable(verdict.path)} is not as it was written: line "
            f"{verdict.broken_line}: {verdict.problem}. The {max(0, (verdict.broken_line or 1) - 1)} "
            "entries before it are intact; that line and everything after it cannot be trusted. "
            "Keep a copy of the log and the recordings as they are, and compare them with any "
            "other record (the cluster's Events, a copy of audit.head).")
    raise typer.Exit(0 if verdict.ok else ExitCode.CHECK_FAILED)


def _row(entry: dict[str, Any]) -> tuple[str, ...]:
    target = entry.get("target") or {}
    exit_code = entry.get("exit")
    what = str(entry.get("command") or "")
    if entry.get("event") in ("start", "end"):
        what += f" {entry['event']}"
    if (entry.get("recording") or {}).get("sha256"):
        what += " (recorded)"
    show = console.printable
    return (show(entry.get("id")), show(entry.get("time", ""))[:19].replace("T", " "), show(what),
            show(f"{entry.get('user')}@{entry.get('host')}"),
            show(target.get("name") or target.get("ref") or ""),
            "" if exit_code is None else show(exit_code), show(entry.get("reason") or ""))


@audit_app.command("list")
def list_(output: OutputOpt = "text") -> None:
    """List the audit log's entries, oldest first."""
    json_out = wants_json(output)
    from distrodebug.audit import log

    found = list(log.entries())
    if json_out:
        console.emit_json("audit-list", {"path": str(log.log_path()), "items": found})
        return
    if not found:
        console.notice("The audit log is empty.")
        return
    console.table("distrodebug audit log",
                  ["ID", "WHEN (UTC)", "WHAT", "WHO", "TARGET", "EXIT", "REASON"],
                  [_row(e) for e in found])


@audit_app.command("show")
def show(
    entry_id: Annotated[str, typer.Argument(metavar="ID", help="An entry's ID (or its start).")],
    speed: Annotated[float, typer.Option("--speed", help="Replay speed (2: twice as fast).")] = 1.0,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Replay at once, no pauses.")] = False,
    max_wait: Annotated[
        float, typer.Option("--max-wait", help="Longest pause in the replay, in seconds.")
    ] = 2.0,
    no_replay: Annotated[bool, typer.Option("--no-replay", help="Only the entries.")] = False,
    output: OutputOpt = "text",
) -> None:
    """Show a command's audit entries (stderr) and replay its recording (stdout)."""
    json_out = wants_json(output)
    from pathlib import Path

    from distrodebug.audit import log, recording

    if speed <= 0:
        raise UsageError(f"--speed {speed} is not a speed.", "Use a number above 0, e.g. 2.")
    found = log.find(entry_id)
    if json_out:
        console.emit_json("audit-show", {"items": found})
        return
    for entry in found:
        for key in ("id", "event", "time", "user", "uid", "host", "command", "args", "target",
                    "mode", "privileges", "sidecar", "reason", "exit", "recording", "seq", "hash"):
            value = entry.get(key)
            if value is not None:
                text = json.dumps(value, ensure_ascii=False) if isinstance(value, list | dict) \
                    else str(value)
                console.notice(f"{key:>10}: {console.printable(text)}")
        console.notice("")
    made = next((e["recording"] for e in reversed(found) if e.get("recording")), None)
    if no_replay:
        return
    if not made:
        console.notice("distrodebug: no recording was made of this command.")
        return
    path = Path(str(made["path"]))
    try:
        if made.get("sha256") and recording.sha256_of(path) != made["sha256"]:
            console.notice(f"distrodebug: warning: {console.printable(path)} was changed since "
                           "the log recorded its sha256; what follows is not what was recorded.")
    except OSError:
        pass  # replay says it cannot be read
    sys.stdout.flush()
    recording.replay(path, sys.stdout.fileno(), speed=speed, max_wait=max_wait, wait=not no_wait)
