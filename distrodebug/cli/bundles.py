"""The bundle commands: dump (write one), verify, extract and report (read one).

Parsing and rendering only; the work is in distrodebug.bundle.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable
from typing import Annotated

import typer

from distrodebug.cli import console
from distrodebug.cli.audit import ReasonOpt
from distrodebug.cli.options import (
    ContainerOpt,
    ContextOpt,
    ImageOpt,
    ImageTargetOpt,
    NamespaceOpt,
    OutputOpt,
)
from distrodebug.cli.witness import witnessed
from distrodebug.cli.words import debug_options, resolve, size, wants_json
from distrodebug.errors import DistrodebugError, ExitCode, UsageError
from distrodebug.settings import load_settings


def dump(
    target: Annotated[str | None, typer.Argument(help="Container name or ID, pod/NAME.")] = None,
    file: Annotated[
        str, typer.Option("--file", "-f", help="Bundle file to write: .tar.zst, .tar.gz or .tar.")
    ] = "",
    image_target: ImageTargetOpt = None,
    compression: Annotated[
        str | None, typer.Option("--compression", help="zst, gz or none (default: by extension).")
    ] = None,
    path: Annotated[list[str] | None, typer.Option("--path", help="Only this path (repeatable).")] = None,
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", help="Skip this glob (repeatable).")
    ] = None,
    no_volumes: Annotated[
        bool, typer.Option("--no-volumes", help="Leave volumes and bind mounts out.")
    ] = False,
    changed_only: Annotated[
        bool, typer.Option("--changed-only", help="Only what differs from the image.")
    ] = False,
    max_file_size: Annotated[
        str, typer.Option("--max-file-size", help="Skip regular files larger than this.")
    ] = "1G",
    include_secrets: Annotated[
        bool, typer.Option("--include-secrets", help="Do not redact secret-looking values.")
    ] = False,
    sign: Annotated[
        str | None, typer.Option("--sign", metavar="KEYFILE",
                                 help="Sign the manifest digest with this SSH private key (FILE.sig).")
    ] = None,
    memory: Annotated[
        bool, typer.Option("--memory", help="Also store each process's memory as an ELF core "
                           "(memory/PID-COMM.core; holds every secret the process holds).")
    ] = False,
    memory_limit: Annotated[
        str, typer.Option("--memory-limit", help="Most process memory to store, all processes "
                          "together; mappings past it are listed as left out.")
    ] = "512M",
    image: ImageOpt = None,
    output: OutputOpt = "text",
    container: ContainerOpt = None,
    namespace: NamespaceOpt = None,
    context: ContextOpt = None,
    reason: ReasonOpt = None,
) -> None:
    """Write one verifiable bundle of the target's filesystem, processes, sockets and metadata."""
    json_out = wants_json(output)
    from pathlib import Path

    from distrodebug.bundle import collect
    from distrodebug.bundle.options import DumpOptions
    from distrodebug.cli import render
    from distrodebug.runtimes import open_runtime

    if not file:
        raise UsageError("No bundle file was given.", "Add -f incident.tar.zst.")
    if compression not in (None, "zst", "gz", "none"):
        raise UsageError(f"Unknown compression '{compression}'.", "Use zst, gz or none.")
    for item in path or ():
        if not item.isprintable() or any("\udc80" <= c <= "\udcff" for c in item):
            raise UsageError(f"--path {item!r} is not a printable UTF-8 name, which the engine's "
                             "API cannot carry.", "Give its parent directory instead.")
    signer = None
    if sign is not None:
        if file == "-":
            raise UsageError("A bundle written to stdout cannot be signed (the signature goes "
                             "beside the bundle file).", "Write it to a file with -f, or drop --sign.")
        from distrodebug.bundle.signature import load_signing_key

        signer = load_signing_key(sign, _passphrase(sign))
    resolved = resolve(target, image_target, container, namespace)
    debug_options(resolved, context=context)
    options = DumpOptions(
        compression=compression,  # type: ignore[arg-type]
        paths=tuple(path or ()), excludes=tuple(exclude or ()), no_volumes=no_volumes,
        changed_only=changed_only, max_file_size=size(max_file_size, "--max-file-size"),
        include_secrets=include_secrets, memory=memory,
        memory_limit=size(memory_limit, "--memory-limit"),
    )
    existed = file != "-" and os.path.lexists(file)
    try:
        with witnessed("dump", resolved, reason), console.progress("dumping") as update:
            result = collect.dump(resolved, Path(file), options, open_runtime(resolved, context),
                                  load_settings(image), console.UI(), update,
                                  command=("distrodebug", *sys.argv[1:]), signer=signer)
    except DistrodebugError as exc:
        # The bundle is renamed into place only when complete: say what is (not) on disk.
        said = f"{exc.message} {exc.hint}".lower()
        if file != "-" and not isinstance(exc, UsageError) and "bundle" not in exc.hint \
                and "no bundle was written" not in said:
            kept = f" ({file} is as it was)" if existed else ""
            exc.hint = f"No bundle was written{kept}. {exc.hint}".strip()
        raise
    if json_out:
        console.emit_json("dump", result.to_json())
    else:
        render.dump(result)


def verify(
    bundle: Annotated[str, typer.Argument(help="The bundle file.")],
    signer: Annotated[
        str | None, typer.Option("--signer", metavar="PUBKEY_OR_ALLOWED_SIGNERS",
                                 help="Require a signature by a key this file trusts.")
    ] = None,
    signature_file: Annotated[
        str | None, typer.Option("--signature", help="The signature file (default: BUNDLE.sig).")
    ] = None,
    output: OutputOpt = "text",
) -> None:
    """Recompute every hash and check the signature; exit 1 on any missing, extra or altered
    entry, 3 on a bad signature (or none, with --signer). Logged in BUNDLE.custody.jsonl."""
    json_out = wants_json(output)
    from distrodebug.bundle import evidence
    from distrodebug.cli import render

    found = evidence.verify(bundle, signer, signature_file)
    if json_out:
        console.emit_json("verify", found.to_json())
    else:
        render.verify(found.result, found)
    raise typer.Exit(found.exit_code)


def extract(
    bundle: Annotated[str, typer.Argument(help="The bundle file.")],
    dest: Annotated[str, typer.Argument(help="An empty or new directory.")],
    force: Annotated[bool, typer.Option("--force", help="Allow a non-empty directory.")] = False,
    output: OutputOpt = "text",
) -> None:
    """Extract a bundle's filesystem safely: nothing lands outside DEST, no devices, no setuid."""
    json_out = wants_json(output)
    from distrodebug.bundle import evidence
    from distrodebug.cli import render

    result, warnings = evidence.extract(bundle, dest, force)
    for warning in warnings:
        console.notice(f"distrodebug: warning: {console.printable(warning)}")
    if json_out:
        console.emit_json("extract", result.to_json())
    else:
        render.extract(result)
    if not result.ok:  # refused, altered or unchecked members: the extraction is not whole
        raise typer.Exit(ExitCode.CHECK_FAILED)


def report(
    bundle: Annotated[str, typer.Argument(help="The bundle file.")],
    html: Annotated[str | None, typer.Option("--html", help="Write a self-contained HTML page.")] = None,
    timeline: Annotated[bool, typer.Option(
        "--timeline", help="Show one time-ordered view: files, processes, events, log lines.")] = False,
    since: Annotated[str | None, typer.Option(
        "--since", help="Timeline from this time (ISO 8601, UTC) or duration before the dump (2h).")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="Timeline up to this time.")] = None,
    limit: Annotated[int | None, typer.Option(
        "--limit", min=0, help="Timeline: only the newest N rows.")] = None,
    full: Annotated[bool, typer.Option(
        "--full", help="Timeline: every file and log line, nothing grouped or capped.")] = False,
    output: OutputOpt = "text",
) -> None:
    """Summarise a bundle: changed and largest files, processes, sockets; or its timeline."""
    json_out = wants_json(output)
    from distrodebug.bundle import timeline as tl
    from distrodebug.bundle.report import load_bundle, render_html, summarize_bundle
    from distrodebug.cli import render
    from distrodebug.clock import parse_time

    loaded = load_bundle(bundle)
    created = parse_time(loaded.manifest.get("created"))
    options = tl.TimelineOptions(
        since=tl.parse_bound(since, created, "--since") if since else None,
        until=tl.parse_bound(until, created, "--until") if until else None,
        limit=limit, full=full)
    summary = summarize_bundle(bundle, loaded)
    result = tl.build_timeline(loaded.manifest, loaded.meta, options)
    if html:
        _write_private(html, render_html(summary, result))
        console.notice(f"wrote {html}")
    if timeline:
        if json_out:
            console.emit_json("timeline", result.to_json())
        else:
            render.timeline(result)
    elif json_out:
        console.emit_json("report", summary.to_json())
    else:
        render.report(summary)


def _passphrase(key: str) -> Callable[[], bytes | None]:
    """Asks for an encrypted key's passphrase on the terminal; nothing without one."""

    def ask() -> bytes | None:
        if not sys.stdin.isatty():
            return None
        import getpass

        return getpass.getpass(f"Passphrase for {key}: ").encode() or None

    return ask


def _write_private(path: str, text: str) -> None:
    """Write ``text`` to ``path`` mode 0600, like the bundle it summarises (it shows the same
    names, command lines and metadata)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
            handle.write(text)
    except OSError as exc:
        raise DistrodebugError(f"Cannot write {path}: {exc.strerror}.",
                               "Choose another file for --html.") from None
