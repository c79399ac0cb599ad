"""typer's declarations of the options several commands share, and kubectl debug's flags.

The checks that turn these words into a request are in words.py, which imports no typer.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Annotated

import typer

from distrodebug.cli.words import KubectlFlags

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
OutputOpt = Annotated[str, typer.Option("--output", "-o", help="Output format: text or json.")]


#: The largest size a file can have (and find -size, tar and the manifest can count).


def _flag(name: str, default: object, annotation: object) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=annotation)


_KUBECTL_PARAMETERS = [
    _flag("env", None, Annotated[list[str] | None, typer.Option(
        "--env", help="Kubernetes: NAME=VALUE in the debugger's environment (repeatable).")]),
    _flag("quiet", False, Annotated[bool, typer.Option(
        "--quiet", "-q", help="Kubernetes: no informational messages.")]),
    _flag("attach", True, Annotated[bool, typer.Option(
        "--attach/--no-attach", help="Kubernetes: attach to the debugger (--attach=false: start it "
        "and print how to attach).")]),
    _flag("same_node", False, Annotated[bool, typer.Option(
        "--same-node", help="Kubernetes copy: schedule the copy on the original's node.")]),
    _flag("share_processes", None, Annotated[bool | None, typer.Option(
        "--share-processes/--no-share-processes", help="Kubernetes copy: one PID namespace for "
        "its containers (default: on).")]),
    *(_flag(f"keep_{what}", False, Annotated[bool, typer.Option(
        f"--keep-{what}", help=f"Kubernetes copy: keep the pod's {words}.")])
      for what, words in (("labels", "labels"), ("annotations", "annotations"),
                          ("liveness", "liveness probes"), ("readiness", "readiness probes"),
                          ("startup", "startup probes"))),
    _flag("keep_init_containers", True, Annotated[bool, typer.Option(
        "--keep-init-containers/--no-keep-init-containers",
        help="Kubernetes copy: run the pod's init containers (default: yes).")]),
    _flag("replace", False, Annotated[bool, typer.Option(
        "--replace", help="Kubernetes copy: delete the original pod once the copy runs.")]),
    _flag("custom", None, Annotated[str | None, typer.Option(
        "--custom", help="Kubernetes: a JSON or YAML file with a partial container spec merged "
        "into the debugger.")]),
    _flag("writable_volumes", False, Annotated[bool, typer.Option(
        "--writable-volumes", help="Kubernetes copy: mount the volumes it shares with the "
        "original read-write (default: read-only).")]),
]


def kubectl_flags(command: Callable[..., None]) -> Callable[..., None]:
    """Add kubectl debug's flags to a command; it receives them as ``kubectl: KubectlFlags``."""
    signature = inspect.signature(command, eval_str=True)  # typer reads the objects, not strings
    own = [p for p in signature.parameters.values() if p.name != "kubectl"]

    @functools.wraps(command)
    def with_flags(*args: object, **kwargs: object) -> None:
        given = {p.name: kwargs.pop(p.name) for p in _KUBECTL_PARAMETERS}
        command(*args, kubectl=KubectlFlags(**given), **kwargs)  # type: ignore[arg-type]

    with_flags.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*own, *_KUBECTL_PARAMETERS])
    return with_flags


