"""`distrodebug image IMAGE`: the command and how its report looks in a terminal.

File names come from the image, which may be hostile: every one goes through console.printable.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from distrodebug.cli import console
from distrodebug.cli.options import OutputOpt
from distrodebug.cli.words import wants_json
from distrodebug.errors import ExitCode, UsageError
from distrodebug.image.rules import Level

if TYPE_CHECKING:
    from distrodebug.image.report import ImageReport

LEVELS = ", ".join(level.word for level in Level)

FailOnOpt = Annotated[
    str | None,
    typer.Option("--fail-on", help=f"Exit 1 when a finding at this level or above is present ({LEVELS})."),
]


ReadOpt = Annotated[
    str,
    typer.Option("--read", help="Where the layers are read: 'auto' (the engine's layer store when it "
                 "is on this machine and readable, else as 'docker save' sends them), 'store' or 'save'."),
]


def image_command(
    image: Annotated[str, typer.Argument(help="An image on the local engine: name[:tag] or ID.")],
    fail_on: FailOnOpt = None,
    output: OutputOpt = "text",
    read: ReadOpt = "auto",
) -> None:
    """Did the multi-stage build leave a distroless image? Findings and fixes, without running it."""
    json_out = wants_json(output)
    threshold = None
    if fail_on is not None:
        threshold = Level.parse(fail_on)
        if threshold is None:
            raise UsageError(f"--fail-on '{fail_on}' is not a level.", f"Use one of: {LEVELS}.")
    from distrodebug.image.report import READ_MODES, check

    if read not in READ_MODES:
        raise UsageError(f"--read '{read}' is not a way to read an image.",
                         f"Use one of: {', '.join(READ_MODES)}.")
    from distrodebug.runtimes import docker_runtime
    from distrodebug.target import parse_image

    ref = parse_image(image).name
    result = check(ref, docker_runtime(), read=read)
    if json_out:
        console.emit_json("image", result.to_json())
    else:
        render(result)
    if result.fails(threshold):
        raise typer.Exit(ExitCode.CHECK_FAILED)


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{count} B"


_HOW = {"layer store": "from the engine's layer store", "docker save": "as 'docker save' streams it"}


def render(result: ImageReport) -> None:
    show = console.printable
    how = _HOW.get(result.read_from, result.read_from)
    console.notice(f"{show(result.image)} ({result.id[:19]}) on {show(result.engine)}, "
                   f"read {how} in {result.seconds:.1f}s without running it")
    sys.stdout.write(f"user: {show(result.user)}\n")
    for finding in result.findings:
        about = finding.about
        count = len(finding.items) + finding.more
        sys.stdout.write(f"\n[{finding.level.word.upper()}] {about.title} ({count})\n")
        for item in finding.items:
            where = f"layer {item.layer}" if item.layer else "config"
            detail = f"  {show(item.detail)}" if item.detail else ""
            sys.stdout.write(f"  {show(item.path)}  ({where}){detail}\n")
        if finding.more:
            sys.stdout.write(f"  ... and {finding.more} more (-o json lists up to 100)\n")
        sys.stdout.write(f"  risk: {about.why}\n  fix:  {about.fix}\n")
    rows = []
    for layer in result.layers:
        largest = ", ".join(f"/{show(p)} {_size(s)}" for s, p in layer.largest[:3])
        rows.append((layer.index, _size(layer.tar_bytes), layer.entries,
                     layer.instruction[:80] or "-", largest or "-"))
    sys.stdout.write("\n")
    console.table("layers (lowest first)", ["#", "SIZE", "FILES", "MADE BY", "LARGEST FILES"], rows)
    for note in result.notes:
        console.notice(f"distrodebug: note: {show(note)}")
    worst = result.worst
    sys.stdout.write(f"\nverdict: {result.verdict}"
                     + (f" (worst: {worst.word})" if worst is not None else "") + "\n")
