"""`distrodebug toolbox build|list` and the `--with` option of shell and exec.

Builds happen on this machine's Docker engine, offline, from the host's apt sources.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from distrodebug.cli import console
from distrodebug.cli.options import ContextOpt, NamespaceOpt
from distrodebug.errors import UsageError
from distrodebug.target import Target

toolbox_app = typer.Typer(help="Build and list the debug images (toolboxes).", no_args_is_help=True)

WithOpt = Annotated[
    str | None,
    typer.Option("--with", help="Debian packages to add to the toolbox, e.g. strace,tcpdump "
                 "(built offline from apt, cached)."),
]


def image_with(target: Target, packages: str | None, image: str | None) -> str | None:
    """The debug image for a session: a toolbox of `packages` when --with was given."""
    if not packages:
        return image
    if image:
        raise UsageError("Give either --with or --image, not both.",
                         "--with builds its own image from Debian packages.")
    if target.runtime == "kubernetes":
        raise UsageError(
            "--with builds the toolbox on this machine's Docker engine, which a cluster's nodes "
            "cannot pull from.",
            "Build it with 'distrodebug toolbox build', push it to a registry your nodes reach, "
            "and pass --image.",
        )
    from distrodebug.runtimes import docker_runtime
    from distrodebug.toolbox import catalog, debs

    names = debs.check_names(packages.split(","))
    built = catalog.ensure(catalog.on_demand(names), docker_runtime(), console.notice)
    if built.reused:
        console.notice(f"distrodebug: reusing {built.ref} ({', '.join(names)})")
    return built.ref


@toolbox_app.command("build")
def build(
    name: Annotated[str, typer.Argument(help="busybox, net, trace or python.")] = "busybox",
    tag: Annotated[str | None, typer.Option("--tag", help="Image reference to create.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Build even if it exists.")] = False,
) -> None:
    """Build a toolbox offline from Debian packages (busybox: the default debug image)."""
    from distrodebug.runtimes import docker_runtime
    from distrodebug.toolbox import catalog

    box = catalog.lookup(name)
    built = catalog.ensure(box, docker_runtime(), console.notice, ref=tag, force=force)
    what = "reused" if built.reused else "built"
    tools = f": {', '.join(built.tools)}" if built.tools else ""
    console.notice(f"{what} {built.ref} ({built.tag}){tools}")


@toolbox_app.command("list")
def list_(
    output: Annotated[str, typer.Option("--output", "-o", help="Output format: text or json.")] = "text",
) -> None:
    """Show the toolboxes built on this engine, their sizes and what is in them."""
    from distrodebug.cli.words import wants_json
    from distrodebug.runtimes import docker_runtime
    from distrodebug.toolbox import catalog

    json_out = wants_json(output)
    rows = catalog.listing(docker_runtime())
    if json_out:
        console.emit_json("toolboxes", {"items": [row.to_json() for row in rows]})
    elif not rows:
        console.notice("No toolbox is built here. Build one with 'distrodebug toolbox build NAME' "
                       "(busybox, net, trace, python).")
    else:
        console.table("toolboxes", ["NAME", "IMAGE", "SIZE", "TOOLS"],
                      [(row.name, row.refs[0] if row.refs else "-", f"{row.size / 1e6:.1f} MB",
                        ", ".join(row.tools)) for row in rows])


def forward(
    target: Annotated[str, typer.Argument(help="Container name or ID, or pod/NAME.",
                                          autocompletion=complete_target)],
    ports: Annotated[str, typer.Argument(help="[LOCAL:]REMOTE_PORT; LOCAL 0 picks a free port.")],
    address: Annotated[
        str, typer.Option("--address", help="Local address to listen on.")
    ] = "127.0.0.1",
    image: Annotated[
        str | None, typer.Option("--image", help="Relay image (default: the debug image).")
    ] = None,
    namespace: NamespaceOpt = None,
    context: ContextOpt = None,
) -> None:
    """Forward a local port to a port the target listens on (loopback-only ones too); Ctrl-C ends it."""
    from distrodebug import forward as core
    from distrodebug.cli.words import debug_options, resolve
    from distrodebug.runtimes import open_runtime
    from distrodebug.settings import load_settings

    resolved = resolve(target, None, None, namespace)
    debug_options(resolved, context=context)
    wanted = core.parse_ports(ports)
    # Docker: a relay container in the target's network namespace; a pod: the kubelet's own
    # port forwarding, which reaches the pod's loopback with no container added.
    runtime = open_runtime(resolved, context)
    with core.started(resolved, wanted, runtime, runtime, load_settings(image),
                      console.notice, address) as running:
        host, port = running.address
        console.notice(f"distrodebug: forwarding {host}:{port} -> {resolved.name}:{wanted.remote} "
                       "(loopback included); Ctrl-C to stop")
        running.serve()


#: Set by kubectl_complete.py (kubectl's Tab for the plugin): offer pods only.
FOR_KUBECTL = "DISTRODEBUG_COMPLETING_FOR"


def complete_target(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion for TARGET: container names, and pod/NAME once a cluster answers (in the
    namespace and context given before it on the line, as kubectl's own completion does)."""
    from distrodebug.runtimes.docker.names import container_names

    pods_only = os.environ.get(FOR_KUBECTL) == "kubectl"
    words = [] if pods_only else [n for n in container_names() if n.startswith(incomplete)]
    if "pod/".startswith(incomplete) or incomplete.startswith("pod/"):
        given = ctx.params
        words += [w for w in pod_names(given.get("namespace"), given.get("context"))
                  if w.startswith(incomplete)]
    return words


def pod_names(namespace: object = None, context: object = None) -> list[str]:
    """pod/NAME words for completion; [] on any trouble, quickly."""
    try:
        from distrodebug.runtimes.kubernetes.client import pod_names as names

        return [f"pod/{name}" for name in names(
            timeout=0.5, namespace=namespace if isinstance(namespace, str) else None,
            context=context if isinstance(context, str) else None)]
    except Exception:  # noqa: BLE001 - completion must never print or fail
        return []
