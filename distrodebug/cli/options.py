"""Options shared by several commands, and the checks that turn their words into a request.

One meaning per flag across commands: ``-o/--output`` is always the format (text or json), a dump
bundle's path is ``-f/--file``; Kubernetes-only options are refused on Docker targets before
anything is sent.
"""

from __future__ import annotations

from typing import Annotated

import typer

from distrodebug.errors import UsageError
from distrodebug.model import DebugOptions
from distrodebug.settings import load_settings
from distrodebug.target import Target, parse_image, parse_target

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

PROFILES = ("auto", "general", "baseline", "restricted", "netadmin", "sysadmin", "legacy")


def wants_json(value: str) -> bool:
    """Check an --output value once, the same way for every command."""
    if value not in ("text", "json", "table"):
        raise UsageError(f"--output '{value}' is not a format.", "Use --output text or --output json.")
    return value == "json"


def set_images(items: list[str] | None) -> dict[str, str]:
    images: dict[str, str] = {}
    for item in items or []:
        name, sep, image = item.partition("=")
        if not sep or not name or not image:
            raise UsageError(f"--set-image '{item}' is not CONTAINER=IMAGE.",
                             "Example: --set-image app=registry/app:debug, or '*=busybox'.")
        images[name] = image
    return images


def resolve(target: str | None, image_target: str | None, container: str | None,
            namespace: str | None) -> Target:
    """The target the words name: a container, a pod or workload, a node, or an image."""
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


def debug_options(target: Target, *, user: str | None = None, cap_add: list[str] | None = None,
                  privileged: bool = False, context: str | None = None, profile: str = "auto",
                  reuse: bool = False, copy: bool = False, keep: bool = False,
                  set_image: list[str] | None = None, timeout: float | None = None) -> DebugOptions:
    """The session's options, checked against the runtime the target lives on."""
    images = set_images(set_image)
    if profile not in PROFILES:
        raise UsageError(f"--profile '{profile}' is not a profile.", f"Use one of {', '.join(PROFILES)}.")
    if target.runtime != "kubernetes":
        used = [flag for flag, on in (("--context", context is not None), ("--profile", profile != "auto"),
                                      ("--reuse", reuse), ("--copy", copy), ("--keep", keep),
                                      ("--set-image", bool(images))) if on]
        if used:
            raise UsageError(
                f"{', '.join(used)} appl{'ies' if len(used) == 1 else 'y'} to Kubernetes targets, "
                f"and '{target}' is a Docker {'image' if target.kind == 'image' else 'container'}.",
                f"Write pod/{target.name} to debug a pod.",
            )
    return DebugOptions(
        user=user, cap_add=tuple(cap_add or ()), privileged=privileged, profile=profile,
        reuse=reuse, copy=copy, keep=keep, set_image=images,
        timeout=load_settings(None, timeout).timeout,
    )


def size(text: str) -> int:
    """'512M', '1G', '1024' as bytes."""
    units = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    number = text.strip().lower().removesuffix("b").removesuffix("i")
    unit = number[-1:] if number[-1:] in units else ""
    try:
        return int(float(number[: len(number) - len(unit)]) * units[unit])
    except ValueError:
        raise UsageError(f"'{text}' is not a size.", "Use a number with K, M or G, e.g. 512M.") from None
