"""The command line: parse words into a request, call the core, render the result.

The only module that imports typer. Errors become one paragraph on stderr and an exit code
(see ExitCode); a traceback appears only with --debug.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any, NoReturn

import typer

from distrodebug.cli import console
from distrodebug.errors import DistrodebugError, ExitCode, UsageError

app = typer.Typer(
    name="distrodebug",
    help="Debug distroless containers on Docker and Kubernetes without a shell in the image.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
toolbox_app = typer.Typer(help="Build or inspect the default debug image.", no_args_is_help=True)
app.add_typer(toolbox_app, name="toolbox")

ImageOpt = Annotated[
    str | None,
    typer.Option("--image", help="Debug image (default: DISTRODEBUG_IMAGE, config file, built-in)."),
]
UserOpt = Annotated[
    str | None, typer.Option("--user", "-u", help="Run the sidecar as this user (uid[:gid]).")
]
CapOpt = Annotated[
    list[str] | None, typer.Option("--cap-add", help="Add a Linux capability (repeatable).")
]
PrivOpt = Annotated[bool, typer.Option("--privileged", help="Run the sidecar privileged.")]
ContainerOpt = Annotated[
    str | None, typer.Option("--container", "-c", help="Kubernetes: the container to debug.")
]
NamespaceOpt = Annotated[str | None, typer.Option("--namespace", "-n", help="Kubernetes namespace.")]
ContextOpt = Annotated[
    str | None, typer.Option("--context", help="Kubernetes: the kubeconfig context to use.")
]
ProfileOpt = Annotated[
    str,
    typer.Option("--profile", help="Kubernetes: auto, general, baseline, restricted, netadmin, sysadmin."),
]
ReuseOpt = Annotated[
    bool, typer.Option("--reuse", help="Kubernetes: reuse a running debugger of ours in the pod.")
]
CopyOpt = Annotated[
    bool, typer.Option("--copy", help="Kubernetes: debug a copy of the pod (crash loops, exited apps).")
]
KeepOpt = Annotated[bool, typer.Option("--keep", help="Kubernetes: keep the copy or node pod afterwards.")]
SetImageOpt = Annotated[
    list[str] | None,
    typer.Option("--set-image", help="Kubernetes copy: CONTAINER=IMAGE (or '*=IMAGE'), repeatable."),
]
TimeoutOpt = Annotated[
    float | None, typer.Option("--timeout", help="Seconds to wait for the debugger to start.")
]
ImageTargetOpt = Annotated[
    str | None,
    typer.Option("--image-target", help="Explore this image's filesystem without running it."),
]


class KubeOpts:
    """Kubernetes-only options, carried to the runtime factory."""

    def __init__(self, context: str | None = None, profile: str = "auto", reuse: bool = False,
                 timeout: float | None = None, copy: bool = False, keep: bool = False,
                 set_image: list[str] | None = None) -> None:
        self.context, self.profile, self.reuse, self.timeout = context, profile, reuse, timeout
        self.copy, self.keep = copy, keep
        self.set_image = _set_images(set_image or [])


def _set_images(items: list[str]) -> dict[str, str] | None:
    images: dict[str, str] = {}
    for item in items:
        name, sep, image = item.partition("=")
        if not sep or not name or not image:
            raise UsageError(f"--set-image '{item}' is not CONTAINER=IMAGE.",
                             "Example: --set-image app=registry/app:debug, or '*=busybox'.")
        images[name] = image
    return images or None


def _runtime(target: Any, kube: KubeOpts | None = None) -> Any:
    kube = kube or KubeOpts()
    if target.runtime == "kubernetes":
        from distrodebug.runtimes.kubernetes.runtime import KubernetesRuntime
        from distrodebug.settings import load_settings

        return KubernetesRuntime(
            context=kube.context, namespace=target.namespace, profile=kube.profile,
            reuse=kube.reuse, timeout=load_settings(None, kube.timeout).timeout, copy=kube.copy,
            keep=kube.keep, set_image=kube.set_image,
        )
    if kube.context or kube.profile != "auto" or kube.reuse or kube.copy or kube.set_image:
        raise UsageError(
            f"--context, --profile and --reuse apply to Kubernetes targets, and '{target}' is a "
            "Docker container.",
            f"Write pod/{target} to debug a pod.",
        )
    from distrodebug.runtimes.docker.runtime import DockerRuntime

    return DockerRuntime()


class _UI:
    def notice(self, text: str) -> None:
        console.notice(text)


def _resolve(target: str | None, image_target: str | None, container: str | None,
             namespace: str | None) -> Any:
    from distrodebug.target import parse_image, parse_target

    if image_target and target:
        raise UsageError(
            f"Give either a target ('{target}') or --image-target, not both.",
            "Use --image-target IMAGE alone to explore an image.",
        )
    if image_target:
        return parse_image(image_target)
    if not target:
        raise UsageError("No target was given.", "Example: 'distrodebug shell web'.")
    return parse_target(target, container=container, namespace=namespace)


def _session(target: Any, command: tuple[str, ...] | None, image: str | None, user: str | None,
             cap_add: list[str] | None, privileged: bool, stdin: bool | None,
             kube: KubeOpts | None = None) -> int:
    from distrodebug import session
    from distrodebug.settings import load_settings

    request = session.SessionRequest(
        target=target, command=command, user=user, cap_add=tuple(cap_add or ()),
        privileged=privileged, stdin=stdin,
    )
    settings = load_settings(image, kube.timeout if kube else None)
    result = session.run(request, _runtime(target, kube), settings, _UI())
    for note in result.notes:
        console.notice(f"distrodebug: {note}")
    return result.exit_code


@app.command()
def shell(
    target: Annotated[str | None, typer.Argument(help="Container name or ID, docker://NAME.")] = None,
    image_target: ImageTargetOpt = None,
    image: ImageOpt = None,
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
) -> None:
    """Open an interactive shell beside the target, in its root view, with debug tools on PATH."""
    resolved = _resolve(target, image_target, container, namespace)
    kube = KubeOpts(context, profile, reuse, timeout, copy, keep, set_image)
    raise typer.Exit(_session(resolved, None, image, user, cap_add, privileged, True, kube))


@app.command(name="exec")
def exec_(
    target: Annotated[str, typer.Argument(help="Container name or ID (or --image-target).")],
    command: Annotated[list[str] | None, typer.Argument(help="The command after --.")] = None,
    image_target: ImageTargetOpt = None,
    image: ImageOpt = None,
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
) -> None:
    """Run one command beside the target without a TTY; its exit status becomes ours."""
    words = list(command or [])
    if words[:1] == ["--"]:
        words.pop(0)
    if image_target:
        # With --image-target the first positional word already belongs to the command.
        words.insert(0, target)
        resolved = _resolve(None, image_target, container, namespace)
    else:
        resolved = _resolve(target, None, container, namespace)
    if not words:
        raise UsageError("No command was given.", "Example: 'distrodebug exec web -- ps'.")
    kube = KubeOpts(context, profile, False, timeout, copy, keep, set_image)
    raise typer.Exit(_session(resolved, tuple(words), image, user, cap_add, privileged, stdin, kube))


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
    from distrodebug.settings import load_settings

    code = demo_core.run(load_settings(image), _UI(), interactive=interactive, keep=keep)
    raise typer.Exit(code)


def _json_flag(value: str) -> bool:
    if value not in ("json", "text", "table"):
        raise UsageError(f"--output '{value}' is not a format.", "Use --output json.")
    return value == "json"


def _size(text: str) -> int:
    units = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    number = text.strip().lower().removesuffix("b").removesuffix("i")
    unit = number[-1:] if number[-1:] in units else ""
    try:
        return int(float(number[: len(number) - len(unit)]) * units[unit])
    except ValueError:
        raise UsageError(f"'{text}' is not a size.", "Use a number with K, M or G, e.g. 512M.") from None


@app.command()
def dump(
    target: Annotated[str | None, typer.Argument(help="Container name or ID.")] = None,
    output_file: Annotated[
        str, typer.Option("--output-file", "-o", help="Bundle file: .tar.zst, .tar.gz or .tar.")
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
    image: ImageOpt = None,
    output: Annotated[str, typer.Option("--output", help="text or json.")] = "text",
    container: ContainerOpt = None,
    namespace: NamespaceOpt = None,
    context: ContextOpt = None,
    profile: ProfileOpt = "auto",
) -> None:
    """Write one verifiable bundle of the target's filesystem, processes, sockets and metadata."""
    json_out = _json_flag(output)
    from pathlib import Path

    from distrodebug.bundle import collect
    from distrodebug.bundle.options import DumpOptions
    from distrodebug.settings import load_settings

    if not output_file:
        raise UsageError("No bundle file was given.", "Add -o incident.tar.zst.")
    if compression not in (None, "zst", "gz", "none"):
        raise UsageError(f"Unknown compression '{compression}'.", "Use zst, gz or none.")
    resolved = _resolve(target, image_target, container, namespace)
    options = DumpOptions(
        compression=compression,  # type: ignore[arg-type]
        paths=tuple(path or ()), excludes=tuple(exclude or ()), no_volumes=no_volumes,
        changed_only=changed_only, max_file_size=_size(max_file_size),
        include_secrets=include_secrets,
    )
    with console.progress("dumping") as update:
        result = collect.dump(resolved, Path(output_file), options,
                              _runtime(resolved, KubeOpts(context, profile)), load_settings(image),
                              _UI(), update)
    if json_out:
        console.emit_json("dump", dict(result.__dict__))
        return
    for warning in result.warnings:
        console.notice(f"distrodebug: warning: {warning}")
    console.notice(
        f"wrote {result.path}: {result.files} files, {result.content_bytes} bytes of content, "
        f"{result.skipped} skipped, {result.redactions} values redacted, "
        f"{result.bundle_bytes} bytes on disk in {result.seconds:.1f}s"
    )
    sys.stdout.write(f"sha256:{result.digest}  {result.path}\n")


@app.command()
def verify(
    bundle: Annotated[str, typer.Argument(help="The bundle file.")],
    output: Annotated[str, typer.Option("--output", help="text or json.")] = "text",
) -> None:
    """Recompute every hash in a bundle; exit 1 on any missing, extra or altered entry."""
    json_out = _json_flag(output)
    from distrodebug.bundle.format import verify_bundle

    result = verify_bundle(bundle)
    if json_out:
        console.emit_json("verify", {**result.__dict__, "ok": result.ok,
                                     "altered": [a.__dict__ for a in result.altered]})
    else:
        for name in result.missing:
            console.notice(f"missing  {name}")
        for name in result.extra:
            console.notice(f"extra    {name}")
        for altered in result.altered:
            console.notice(f"altered  {altered.name}: {altered.what}")
        if not result.manifest_ok:
            console.notice(f"manifest: {result.manifest_error or 'unreadable'}")
        verdict = "OK" if result.ok else "MISMATCH"
        sys.stdout.write(f"{verdict} sha256:{result.digest}  {result.checked} entries checked\n")
    raise typer.Exit(0 if result.ok else ExitCode.CHECK_FAILED)


@app.command()
def extract(
    bundle: Annotated[str, typer.Argument(help="The bundle file.")],
    dest: Annotated[str, typer.Argument(help="An empty or new directory.")],
    force: Annotated[bool, typer.Option("--force", help="Allow a non-empty directory.")] = False,
) -> None:
    """Extract a bundle's filesystem safely: nothing lands outside DEST, no devices, no setuid."""
    from distrodebug.bundle.extract import extract_bundle

    result = extract_bundle(bundle, dest, force)
    for name, why in result.refused:
        console.notice(f"refused  {name}: {why}")
    for name in result.altered:
        console.notice(f"altered  {name}")
    console.notice(
        f"extracted {result.files} files, {result.dirs} directories, {result.symlinks} symlinks "
        f"into {result.dest}"
    )
    if result.altered or not result.manifest_ok:
        raise typer.Exit(ExitCode.CHECK_FAILED)


@app.command()
def report(
    bundle: Annotated[str, typer.Argument(help="The bundle file.")],
    html: Annotated[str | None, typer.Option("--html", help="Write a self-contained HTML page.")] = None,
    output: Annotated[str, typer.Option("--output", help="text or json.")] = "text",
) -> None:
    """Summarise a bundle: changed and largest files, processes, sockets."""
    json_out = _json_flag(output)
    import dataclasses

    from distrodebug.bundle.report import render_html, summarize_bundle

    summary = summarize_bundle(bundle)
    if html:
        with open(html, "w", encoding="utf-8") as handle:
            handle.write(render_html(summary))
        console.notice(f"wrote {html}")
    if json_out:
        console.emit_json("report", dataclasses.asdict(summary))
        return
    target = summary.target
    console.notice(f"bundle sha256:{summary.digest} ({summary.format}, {summary.created})")
    console.table("target", ["FIELD", "VALUE"], [(k, target.get(k)) for k in (
        "container_name", "container_id", "image", "image_id", "status", "user") if k in target])
    console.table("changed files", ["CHANGE", "PATH", "SIZE"],
                  [(r.change, r.path, r.size) for r in summary.changed[:50]])
    console.table("largest files", ["SIZE", "PATH"], [(r.size, r.path) for r in summary.largest])
    console.table("processes", ["PID", "PPID", "UID", "COMMAND"], [
        (p.get("pid"), p.get("ppid"), (p.get("uid") or [None])[0] if isinstance(p.get("uid"), list)
         else p.get("uid"), " ".join(p.get("cmdline") or []) or p.get("name"))
        for p in summary.processes])
    console.table("listening sockets", ["PROTO", "ADDRESS", "PROCESSES"], [
        (s.get("proto"), f"{s.get('local_address')}:{s.get('local_port')}",
         ", ".join(f"{p.get('pid')}/{p.get('name')}" for p in s.get("processes") or []))
        for s in summary.listening])
    if summary.skipped:
        console.table("skipped", ["PATH", "REASON"], [(r.path, r.reason) for r in summary.skipped[:50]])


@app.command(name="cp")
def cp(
    source: Annotated[str, typer.Argument(help="TARGET:/path or a local path.")],
    destination: Annotated[str, typer.Argument(help="A local path or TARGET:/path.")],
    container: ContainerOpt = None,
    namespace: NamespaceOpt = None,
    context: ContextOpt = None,
    profile: ProfileOpt = "auto",
    image: ImageOpt = None,
    user: UserOpt = None,
) -> None:
    """Copy files out of or into a target that has no tar (running or stopped)."""
    from pathlib import Path

    from distrodebug import cp as copy
    from distrodebug.settings import load_settings

    src = copy.parse_endpoint(source, container, namespace)
    dst = copy.parse_endpoint(destination, container, namespace)
    if (src.target is None) == (dst.target is None):
        raise UsageError(
            "Exactly one side of 'cp' must be inside a target.",
            "Examples: 'distrodebug cp pod/api:/etc/config ./config', "
            "'distrodebug cp ./fix.json web:/tmp/'.",
        )
    remote = src.target or dst.target
    runtime = _runtime(remote, KubeOpts(context, profile))
    settings = load_settings(image)
    if src.target is not None:
        count = copy.copy_from(src, Path(dst.path), runtime, settings, _UI())
        console.notice(f"copied {count} entries from {source} to {dst.path}")
    else:
        copy.copy_to(Path(src.path), dst, runtime, settings, _UI(), uid=user)
        console.notice(f"copied {src.path} to {destination}")


@app.command()
def doctor(
    target: Annotated[str | None, typer.Argument(help="Optional: a container or pod/NAME.")] = None,
    kubernetes: Annotated[bool, typer.Option("--kubernetes", help="Check the cluster.")] = False,
    namespace: NamespaceOpt = None,
    context: ContextOpt = None,
    profile: ProfileOpt = "auto",
    image: ImageOpt = None,
    output: Annotated[str, typer.Option("--output", "-o", help="table or json.")] = "table",
) -> None:
    """Check that debugging can work here: engine or cluster, permissions, Pod Security, target."""
    import dataclasses

    from distrodebug import doctor as core
    from distrodebug.settings import load_settings
    from distrodebug.target import Target

    resolved = _resolve(target, None, None, namespace) if target else None
    settings = load_settings(image)
    on_kube = kubernetes or context is not None or (resolved is not None
                                                    and resolved.runtime == "kubernetes")
    if on_kube:
        kube_target = resolved or Target(kind="pod", name="x", runtime="kubernetes",
                                         namespace=namespace)
        runtime = _runtime(kube_target, KubeOpts(context, profile))
        report = core.kubernetes(runtime, resolved, settings)
    else:
        from distrodebug.runtimes.docker.runtime import DockerRuntime

        report = core.docker(DockerRuntime(), resolved, settings)
    if output == "json":
        console.emit_json("doctor", {"runtime": report.runtime, "endpoint": report.endpoint,
                                     "ok": report.ok, "prediction": report.prediction,
                                     "checks": [dataclasses.asdict(c) for c in report.checks]})
    else:
        console.table(f"distrodebug doctor: {report.runtime} at {report.endpoint}",
                      ["CHECK", "RESULT", "DETAIL"],
                      [(c.name, "ok" if c.ok else ("FAIL" if c.required else "warn"), c.detail)
                       for c in report.checks])
        if report.prediction:
            sys.stdout.write(f"\nprediction: {report.prediction}\n")
        sys.stdout.write(f"\n{'debugging should work' if report.ok else 'debugging cannot work'}\n")
    raise typer.Exit(0 if report.ok else ExitCode.CHECK_FAILED)


@app.command(name="sessions")
def sessions(
    output: Annotated[str, typer.Option("--output", "-o", help="table or json.")] = "table",
) -> None:
    """List live debug sessions and leftovers of crashed ones."""
    from distrodebug import cleanup as leftovers
    from distrodebug.runtimes.docker.runtime import DockerRuntime

    items = leftovers.classify(DockerRuntime().list_ours())
    if output == "json":
        console.emit_json("sessions", {"items": [item.__dict__ for item in items]})
        return
    rows = [
        (i.kind, i.name, i.target, i.session, i.created, "live" if i.alive else "leftover")
        for i in items
    ]
    if not rows:
        console.notice("No distrodebug sessions or leftovers.")
        return
    console.table("distrodebug objects", ["KIND", "NAME", "TARGET", "SESSION", "CREATED", "STATUS"],
                  rows)


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
    """Remove what crashed sessions left: containers, snapshots, volumes; expired pod copies."""
    from distrodebug import cleanup as leftovers
    from distrodebug.runtimes.docker.runtime import DockerRuntime
    from distrodebug.target import Target

    if kubernetes or namespace or context:
        runtime: Any = _runtime(Target(kind="pod", name="x", runtime="kubernetes",
                                       namespace=namespace), KubeOpts(context))
    else:
        runtime = DockerRuntime()
    doomed = leftovers.removable(leftovers.classify(runtime.list_ours()), all_)
    for item in doomed:
        console.notice(f"{'would remove' if dry_run else 'removing'} {item.kind} {item.name}")
    if not dry_run:
        runtime.remove_objects([(item.kind, item.id) for item in doomed])
    if not doomed:
        console.notice("Nothing to clean up.")


@toolbox_app.command("build")
def toolbox_build(
    tag: Annotated[str | None, typer.Option("--tag", help="Image reference to create.")] = None,
) -> None:
    """Build the default busybox toolbox offline from this machine's static busybox."""
    from distrodebug import toolbox as images
    from distrodebug.runtimes.docker.runtime import DockerRuntime

    runtime = DockerRuntime()
    ref = tag or images.TOOLBOX_REF
    console.notice(f"building {ref} from a static busybox ...")
    image_id = images.build_toolbox(runtime.import_image, ref)
    console.notice(f"built {ref} ({image_id[:19]})")


@app.command()
def version() -> None:
    """Print distrodebug's version."""
    from distrodebug import __version__

    sys.stdout.write(f"distrodebug {__version__}\n")


def _fail(code: int, paragraph: str) -> NoReturn:
    console.error(paragraph)
    raise SystemExit(code)


#: exec's options that take no value; every other option of exec takes one.
_EXEC_FLAGS = {"--privileged", "--stdin", "--no-stdin", "-i", "--copy", "--keep", "-h", "--help"}


def _split_exec_command(args: list[str]) -> list[str]:
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
    args = _split_exec_command(args)
    prog = "kubectl distrodebug" if os.path.basename(sys.argv[0]).startswith("kubectl") else None
    try:
        code = app(args=args, prog_name=prog or "distrodebug", standalone_mode=False)
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
