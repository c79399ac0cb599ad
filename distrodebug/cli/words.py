"""The command line's words turned into requests, without typer: the checks every command
shares, importable by the quick exec lane (quick.py) as well as by the typer commands.

One meaning per flag across commands: ``-o/--output`` is always the format (text or json), a dump
bundle's path is ``-f/--file``; Kubernetes-only options are refused on Docker targets before
anything is sent.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from distrodebug.errors import UsageError
from distrodebug.model import DebugOptions
from distrodebug.settings import load_settings
from distrodebug.target import Target, parse_image, parse_target

MAX_SIZE = (1 << 63) - 1

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
                  set_image: list[str] | None = None, timeout: float | None = None,
                  kubectl: KubectlFlags | None = None) -> DebugOptions:
    """The session's options, checked against the runtime the target lives on."""
    images = set_images(set_image)
    flags = kubectl or KubectlFlags()
    if profile not in PROFILES:
        raise UsageError(f"--profile '{profile}' is not a profile.", f"Use one of {', '.join(PROFILES)}.")
    if target.runtime != "kubernetes":
        used = [flag for flag, on in (("--context", context is not None), ("--profile", profile != "auto"),
                                      ("--reuse", reuse), ("--copy", copy), ("--keep", keep),
                                      ("--set-image", bool(images))) if on] + flags.used()
        if used:
            raise UsageError(
                f"{', '.join(used)} appl{'ies' if len(used) == 1 else 'y'} to Kubernetes targets, "
                f"and '{target}' is a Docker {'image' if target.kind == 'image' else 'container'}.",
                f"Write pod/{target.name} to debug a pod.",
            )
    copy_only = [f for f in ("--same-node", "--share-processes", "--keep-labels",
                             "--keep-annotations", "--keep-liveness", "--keep-readiness",
                             "--keep-startup", "--keep-init-containers", "--replace",
                             "--writable-volumes")
                 if f in flags.used()]
    if copy_only and not (copy or images):
        raise UsageError(f"{', '.join(copy_only)} appl{'ies' if len(copy_only) == 1 else 'y'} to "
                         "copies of a pod.", "Add --copy (or --set-image).")
    settings = load_settings(None, timeout)
    return DebugOptions(
        user=user, cap_add=tuple(cap_add or ()), privileged=privileged, profile=profile,
        reuse=reuse, copy=copy, keep=keep, set_image=images, timeout=settings.timeout,
        debugger_idle=settings.debugger_idle, max_debuggers=settings.max_debuggers,
        warm_idle=settings.warm_idle,
        env=env_pairs(flags.env), quiet=flags.quiet, attach=flags.attach,
        same_node=flags.same_node, share_processes=flags.share_processes,
        keep_labels=flags.keep_labels, keep_annotations=flags.keep_annotations,
        keep_liveness=flags.keep_liveness, keep_readiness=flags.keep_readiness,
        keep_startup=flags.keep_startup, keep_init_containers=flags.keep_init_containers,
        replace=flags.replace, custom=read_custom(flags.custom),
        writable_volumes=flags.writable_volumes,
    )


def size(text: str, flag: str = "") -> int:
    """'512M', '1G', '1024' as bytes; ``flag`` names the option in the error."""
    units = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    number = text.strip().lower().removesuffix("b").removesuffix("i")
    unit = number[-1:] if number[-1:] in units else ""
    try:
        value = float(number[: len(number) - len(unit)]) * units[unit]
    except ValueError:
        raise UsageError(f"{flag} '{text}' is not a size.".lstrip(),
                         "Use a number with K, M or G, e.g. 512M.") from None
    if not 0 <= value <= MAX_SIZE:  # also false for nan; inf is above
        raise UsageError(f"{flag} '{text}' is not a size from 0 to 8E.".lstrip(),
                         "Use a number with K, M or G, e.g. 512M.")
    return int(value)


@dataclass(frozen=True)
class KubectlFlags:
    """kubectl debug's flags of the same names, for pod targets."""

    env: list[str] | None = None
    quiet: bool = False
    attach: bool = True
    same_node: bool = False
    share_processes: bool | None = None
    keep_labels: bool = False
    keep_annotations: bool = False
    keep_liveness: bool = False
    keep_readiness: bool = False
    keep_startup: bool = False
    keep_init_containers: bool = True
    replace: bool = False
    custom: str | None = None
    writable_volumes: bool = False

    def used(self) -> list[str]:
        """The flags given a value other than their default, as the user typed them."""
        return [f"--{f.name.replace('_', '-')}" for f in fields(self)
                if getattr(self, f.name) != f.default]


#: Boolean flags kubectl writes as --NAME=false; click spells those --no-NAME.
PFLAG_BOOLEANS = ("attach", "share-processes", "keep-init-containers")


def pflag_booleans(args: list[str]) -> list[str]:
    """kubectl's ``--attach=false`` and ``--attach=true`` in click's spelling."""
    out: list[str] = []
    for i, word in enumerate(args):
        if word == "--":
            return [*out, *args[i:]]  # the rest is the user's command, never ours
        name, sep, value = word.partition("=")
        if sep and name.startswith("--") and name[2:] in PFLAG_BOOLEANS and value in ("true", "false"):
            word = name if value == "true" else f"--no-{name[2:]}"
        out.append(word)
    return out


def read_custom(path: str | None) -> dict[str, Any] | None:
    """kubectl's --custom file: a partial container spec in JSON or YAML."""
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise UsageError(f"--custom '{path}' cannot be read: {exc.strerror}.",
                         "Give a JSON or YAML file with a partial container spec.") from None
    try:
        import yaml  # the kubernetes client depends on PyYAML; YAML is a superset of JSON

        parsed = yaml.safe_load(text)
    except Exception as exc:
        raise UsageError(f"--custom '{path}' is not JSON or YAML: {exc}.",
                         'Example: {"securityContext": {"runAsUser": 65532}}.') from None
    if not isinstance(parsed, dict):
        raise UsageError(f"--custom '{path}' does not hold a container spec (a mapping).",
                         'Example: {"securityContext": {"runAsUser": 65532}}.')
    return parsed


def env_pairs(items: list[str] | None) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageError(f"--env '{item}' is not NAME=VALUE.", "Example: --env DEBUG=1.")
        pairs.append((name, value))
    return tuple(pairs)
