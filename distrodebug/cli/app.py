"""The command line: parse words into a request, call the core, render the result.

The only module that imports typer. Errors become one paragraph on stderr and an exit code
(see ExitCode); a traceback appears only with --debug.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from distrodebug.cli import bundles, console, quick
from distrodebug.cli.audit import NoRecordOpt, ReasonOpt, audit_app
from distrodebug.cli.image import image_command
from distrodebug.cli.options import (
    CapOpt,
    ContainerOpt,
    ContextOpt,
    CopyOpt,
    ImageOpt,
    ImageTargetOpt,
    KeepOpt,
    NamespaceOpt,
    OutputOpt,
    PrivOpt,
    ProfileOpt,
    ReuseOpt,
    SetImageOpt,
    TimeoutOpt,
    UserOpt,
    kubectl_flags,
)
from distrodebug.cli.tools import WithOpt, complete_target, forward, image_with, toolbox_app
from distrodebug.cli.witness import remember_argv, witnessed
from distrodebug.cli.words import KubectlFlags, debug_options, pflag_booleans, resolve, wants_json
from distrodebug.errors import DistrodebugError, ExitCode, UsageError
from distrodebug.settings import load_settings

if TYPE_CHECKING:
    from distrodebug.runtimes.base import Inventory

app = typer.Typer(
    name="distrodebug",
    help="Debug distroless containers on Docker and Kubernetes without a shell in the image.",
    no_args_is_help=True,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(toolbox_app, name="toolbox")
app.add_typer(audit_app, name="audit")
app.command(name="forward")(forward)
app.command(name="image")(image_command)
for _command in (bundles.dump, bundles.verify, bundles.extract, bundles.report):
    app.command()(_command)

@app.command()
@kubectl_flags
def shell(
    target: Annotated[str | None, typer.Argument(help="Container name or ID, docker://NAME.",
                                                 autocompletion=complete_target)] = None,
    image_target: ImageTargetOpt = None,
    image: ImageOpt = None,
    with_: WithOpt = None,
    user: UserOpt = None,
    cap_add: CapOpt = None,
    privileged: PrivOpt = False,
    container: ContainerOpt = None,
    namespace: NamespaceOpt = None,
    context: ContextOpt = None,
    profile: ProfileOpt = "auto",
    reuse: ReuseOpt = False,
    timeout: TimeoutOpt = None,
    copy: CopyOpt = False,
    keep: KeepOpt = False,
    set_image: SetImageOpt = None,
    reason: ReasonOpt = None,
    no_record: NoRecordOpt = False,
    kubectl: KubectlFlags | None = None,
) -> None:
    """Open an interactive shell beside the target, in its root view, with debug tools on PATH."""
    resolved = resolve(target, image_target, container, namespace)
    options = debug_options(resolved, user=user, cap_add=cap_add, privileged=privileged, context=context,
                            profile=profile, reuse=reuse, copy=copy, keep=keep, set_image=set_image,
                            timeout=timeout, kubectl=kubectl)
    with witnessed("shell", resolved, reason, record=not no_record and options.attach,
                   quiet=options.quiet) as outcome:
        outcome.code = quick.session(resolved, None, image_with(resolved, with_, image), options,
                                     True, context)
    raise typer.Exit(outcome.code)


@app.command(name="exec")
@kubectl_flags
def exec_(
    target: Annotated[str, typer.Argument(help="Container name or ID (or --image-target).",
                                          autocompletion=complete_target)],
    command: Annotated[list[str] | None, typer.Argument(help="The command after --.")] = None,
    image_target: ImageTargetOpt = None,
    image: ImageOpt = None,
    with_: WithOpt = None,
    user: UserOpt = None,
    cap_add: CapOpt = None,
    privileged: PrivOpt = False,
    stdin: Annotated[
        bool | None,
        typer.Option("--stdin/--no-stdin", "-i", help="Forward stdin (default: when piped)."),
    ] = None,
    container: ContainerOpt = None,
    namespace: NamespaceOpt = None,
    context: ContextOpt = None,
    profile: ProfileOpt = "auto",
    timeout: TimeoutOpt = None,
    copy: CopyOpt = False,
    keep: KeepOpt = False,
    set_image: SetImageOpt = None,
    reason: ReasonOpt = None,
    kubectl: KubectlFlags | None = None,
) -> None:
    """Run one command beside the target without a TTY; its exit status becomes ours."""
    words = list(command or [])
    if words[:1] == ["--"]:
        words.pop(0)
    if image_target:
        # With --image-target the first positional word already belongs to the command.
        words.insert(0, target)
        resolved = resolve(None, image_target, container, namespace)
    else:
        resolved = resolve(target, None, container, namespace)
    if not words:
        raise UsageError("No command was given.", "Example: 'distrodebug exec web -- ps'.")
    options = debug_options(resolved, user=user, cap_add=cap_add, privileged=privileged, context=context,
                            profile=profile, copy=copy, keep=keep, set_image=set_image, timeout=timeout,
                            kubectl=kubectl)
    with witnessed("exec", resolved, reason, quiet=options.quiet) as outcome:
        outcome.code = quick.session(resolved, tuple(words), image_with(resolved, with_, image),
                                     options, stdin, context)
    raise typer.Exit(outcome.code)


@app.command()
def demo(
    interactive: Annotated[
        bool, typer.Option("--interactive", help="Open a shell in the demo app instead.")
    ] = False,
    keep: Annotated[bool, typer.Option("--keep", help="Leave the demo app running.")] = False,
    image: ImageOpt = None,
) -> None:
    """Start a distroless demo app, look inside it through the sidecar, and clean up."""
    from distrodebug import demo as demo_core

    code = demo_core.run(load_settings(image), console.UI(), interactive=interactive, keep=keep)
    raise typer.Exit(code)


@app.command(name="cp")
def cp(
    source: Annotated[str, typer.Argument(help="TARGET:/path or a local path.")],
    destination: Annotated[str, typer.Argument(help="A local path or TARGET:/path.")],
    container: ContainerOpt = None,
    namespace: NamespaceOpt = None,
    context: ContextOpt = None,
    image: ImageOpt = None,
    user: UserOpt = None,
    reason: ReasonOpt = None,
) -> None:
    """Copy files out of or into a target that has no tar (running or stopped)."""
    from pathlib import Path

    from distrodebug import cp as copy
    from distrodebug.runtimes import open_runtime

    src = copy.parse_endpoint(source, container, namespace)
    dst = copy.parse_endpoint(destination, container, namespace)
    if (src.target is None) == (dst.target is None):
        raise UsageError(
            "Exactly one side of 'cp' must be inside a target.",
            "Examples: 'distrodebug cp pod/api:/etc/config ./config', "
            "'distrodebug cp ./fix.json web:/tmp/'.",
        )
    remote = src.target or dst.target
    assert remote is not None
    debug_options(remote, context=context)
    with witnessed("cp", remote, reason):
        runtime = open_runtime(remote, context)
        settings = load_settings(image)
        if src.target is not None:
            count = copy.copy_from(src, Path(dst.path), runtime, settings, console.UI())
            console.notice(f"copied {count} entries from {source} to {dst.path}")
        else:
            copy.copy_to(src.path, dst, runtime, settings, console.UI(), uid=user)
            console.notice(f"copied {src.path} to {destination}")


@app.command()
def doctor(
    target: Annotated[str | None, typer.Argument(help="Optional: a container or pod/NAME.")] = None,
    kubernetes: Annotated[bool, typer.Option("--kubernetes", help="Check the cluster.")] = False,
    namespace: NamespaceOpt = None,
    context: ContextOpt = None,
    profile: ProfileOpt = "auto",
    image: ImageOpt = None,
    output: OutputOpt = "text",
) -> None:
    """Check that debugging can work here: engine or cluster, permissions, Pod Security, target."""
    json_out = wants_json(output)
    from distrodebug import doctor as core
    from distrodebug.cli import render
    from distrodebug.runtimes import docker_runtime, kubernetes_runtime

    resolved = resolve(target, None, None, namespace) if target else None
    settings = load_settings(image)
    on_kube = kubernetes or context is not None or (resolved is not None
                                                    and resolved.runtime == "kubernetes")
    if on_kube:
        if resolved is not None:
            debug_options(resolved, context=context, profile=profile)
        result = core.kubernetes(kubernetes_runtime(context, namespace), resolved, settings, profile)
    else:
        if profile != "auto":
            raise UsageError("--profile applies to Kubernetes.", "Add --kubernetes or name a pod/NAME.")
        result = core.docker(docker_runtime(), resolved, settings)
    if json_out:
        console.emit_json("doctor", result.to_json())
    else:
        render.doctor(result)
    raise typer.Exit(0 if result.ok else ExitCode.CHECK_FAILED)


def _inventory(kubernetes: bool, namespace: str | None, context: str | None) -> Inventory:
    from distrodebug.runtimes import docker_runtime, kubernetes_runtime

    if kubernetes or namespace or context:
        return kubernetes_runtime(context, namespace)
    return docker_runtime()


@app.command(name="sessions")
def sessions(
    output: OutputOpt = "text",
    kubernetes: Annotated[
        bool, typer.Option("--kubernetes", help="List pod copies and node pods in a namespace.")
    ] = False,
    namespace: NamespaceOpt = None,
    context: ContextOpt = None,
) -> None:
    """List live debug sessions and leftovers of crashed ones."""
    json_out = wants_json(output)
    from distrodebug import cleanup as core
    from distrodebug.cli import render

    items = core.classify(_inventory(kubernetes, namespace, context).list_ours())
    if json_out:
        console.emit_json("sessions", {"items": [item.to_json() for item in items]})
    else:
        render.sessions(items)


app.command(name="ps", help="Same as 'sessions'.")(sessions)


@app.command()
def cleanup(
    all_: Annotated[bool, typer.Option("--all", help="Also remove live sessions' objects.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would go.")] = False,
    kubernetes: Annotated[
        bool, typer.Option("--kubernetes", help="Clean pod copies and node pods in a namespace.")
    ] = False,
    namespace: NamespaceOpt = None,
    context: ContextOpt = None,
) -> None:
    """Remove what crashed sessions left: containers, snapshots, volumes; expired pod copies;
    partial bundles of killed dumps."""
    from distrodebug import cleanup as core
    from distrodebug.bundle import partials

    inventory = _inventory(kubernetes, namespace, context)
    doomed = core.removable(core.classify(inventory.list_ours()), all_)
    for item in doomed:
        console.notice(f"{'would remove' if dry_run else 'removing'} {item.kind} {item.name}")
    if not dry_run:
        inventory.remove_objects([(item.kind, item.id) for item in doomed])
    bundles = [p for p in partials.found() if not p.alive]
    for partial in bundles:
        console.notice(f"{'would remove' if dry_run else 'removing'} partial bundle "
                       f"{console.printable(str(partial.path))}")
        if not dry_run:
            partials.remove(partial)
    if not doomed and not bundles:
        console.notice("Nothing to clean up.")


@app.command()
def version() -> None:
    """Print distrodebug's version."""
    from distrodebug import __version__

    sys.stdout.write(f"distrodebug {__version__}\n")


def _fail(code: int, paragraph: str) -> NoReturn:
    console.error(paragraph)
    raise SystemExit(code)


def _reader_gone() -> NoReturn:
    """Whatever read our stdout went away (`verify B | head -1`): 141, as a shell reports a
    piped tool, not click's 1, which for verify means "check failed". What is still buffered
    goes to /dev/null, so the interpreter's last flush cannot fail again."""
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, sys.stdout.fileno())
    except (OSError, ValueError):  # no real stdout to repoint
        pass
    finally:
        os.close(null)
    raise SystemExit(ExitCode.BROKEN_PIPE)


#: exec's options that take no value; every other option of exec takes one.
_EXEC_FLAGS = {"--privileged", "--stdin", "--no-stdin", "-i", "--copy", "--keep", "--reuse", "-h",
               "--help", "--quiet", "-q", "--attach", "--no-attach", "--same-node",
               "--share-processes", "--no-share-processes", "--keep-labels", "--keep-annotations",
               "--keep-liveness", "--keep-readiness", "--keep-startup", "--keep-init-containers",
               "--no-keep-init-containers", "--replace", "--writable-volumes"}


def split_exec_command(args: list[str]) -> list[str]:
    """`exec TARGET CMD ARGS...` without `--`: everything after the target is the command.

    Options may come before or after the target when `--` separates the command (kubectl's
    habit); without `--`, a `-c` in the command must not be taken for our --container.
    """
    if not args or args[0] != "exec" or "--" in args:
        return args
    i = 1
    while i < len(args):
        word = args[i]
        if not word.startswith("-") or word == "-":
            return [*args[: i + 1], "--", *args[i + 1 :]]
        i += 1 if word in _EXEC_FLAGS or "=" in word else 2
    return args


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point for `distrodebug` and `kubectl-distrodebug`."""
    args = list(sys.argv[1:] if argv is None else argv)
    ours = args[: args.index("--")] if "--" in args else args
    debug = "--debug" in ours
    if debug:
        args.remove("--debug")
    args = split_exec_command(pflag_booleans(args))
    remember_argv(args)
    prog = "kubectl distrodebug" if os.path.basename(sys.argv[0]).startswith("kubectl") else None
    try:
        code = app(args=args, prog_name=prog or "distrodebug", standalone_mode=False)
        sys.stdout.flush()
    except BrokenPipeError:
        _reader_gone()
    except SystemExit as exc:
        # click turns EPIPE into exit 1 after wrapping stdout to silence later flushes.
        if exc.code == 1 and type(sys.stdout).__name__ == "PacifyFlushWrapper":
            _reader_gone()
        raise
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        _fail(ExitCode.INTERRUPTED, "Interrupted.")
    except DistrodebugError as exc:
        if debug:
            raise
        _fail(exc.exit_code, exc.paragraph())
    except KeyboardInterrupt:
        _fail(ExitCode.INTERRUPTED, "Interrupted; nothing was left behind.")
    except Exception as exc:
        # typer's command-line errors (its own click or the real one, by version): usage, exit 2.
        if not any(k.__name__ == "ClickException" for k in type(exc).__mro__):
            raise
        exc.show()  # type: ignore[attr-defined]
        raise SystemExit(ExitCode.USAGE) from None
    raise SystemExit(code if isinstance(code, int) else 0)
