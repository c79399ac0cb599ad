"""Output: stdout for data, stderr for everything else. The only module that imports rich.

rich is imported lazily so that `exec` and `--help` do not pay for it unless they draw a table.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

JSON_VERSION = 1


# C0 and C1 controls, DEL, and the bidirectional overrides that reorder what a line shows.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\udc80-\udcff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: object) -> str:
    """Text from a target (file names, command lines) with every control character escaped,
    so it cannot move the cursor, erase lines, retitle the terminal or reorder the text."""
    text = "" if value is None else str(value)
    return _CONTROL.sub(_escape, text) if _CONTROL.search(text) else text


class UI:
    """What the core reports through (session.UI): a line on stderr, none when quiet."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet

    def notice(self, text: str) -> None:
        if not self.quiet:
            notice(text)

    def heading(self, text: str) -> None:
        """demo.DemoUI: a section heading on stdout."""
        heading(text)


def notice(text: str) -> None:
    """One plain line on stderr; no markup is interpreted, file names may contain brackets."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def error(paragraph: str) -> None:
    """An error as one paragraph on stderr, control characters escaped: errors name files,
    processes and objects that came from a target (cp's refused entries, say)."""
    prefix = "distrodebug: error: "
    sys.stderr.write(prefix + printable(paragraph) + "\n")
    sys.stderr.flush()


def emit_json(kind: str, data: Any) -> None:
    """A versioned JSON document on stdout, for scripts."""
    sys.stdout.write(json.dumps({"version": JSON_VERSION, "kind": kind, **data}, indent=2) + "\n")
    sys.stdout.flush()


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A table of data on stdout."""
    from rich.table import Table

    out = _stdout_console(highlight=False, soft_wrap=False)
    grid = Table(title=title, title_justify="left", show_edge=False, box=None, pad_edge=False)
    for column in columns:
        grid.add_column(column, overflow="fold")
    for row in rows:
        grid.add_row(*(_plain(cell) for cell in row))
    out.print(grid)


def _stdout_console(**options: Any) -> Any:
    """A rich Console on stdout that lets a broken pipe be one: rich's own answer is exit 1,
    which for verify or image means "check failed" (the command line makes it 141)."""
    from rich.console import Console

    class _Stdout(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            raise BrokenPipeError

    return _Stdout(**options)


def _plain(value: object) -> Any:
    from rich.text import Text

    return Text(printable(value))


def heading(text: str) -> None:
    """A section heading on stdout (the demo's steps)."""
    _stdout_console(highlight=False).print(f"\n[bold cyan]== {text}[/]")


@contextmanager
def progress(label: str, total: int | None = None) -> Iterator[Any]:
    """A transient progress bar on stderr with bytes and files; update(bytes=..., files=...)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TransferSpeedColumn,
    )

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TextColumn("{task.fields[files]} files"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=not sys.stderr.isatty(),
    )
    with bar:
        task = bar.add_task(label, total=total, files=0)

        def update(done: int, files: int) -> None:
            bar.update(task, completed=done, files=files)

        yield update
