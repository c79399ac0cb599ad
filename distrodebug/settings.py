"""Defaults, environment overrides and the user's config file, resolved in that order of weakness.

Precedence, strongest first: command-line flag, environment variable, config file, built-in default.
The config file is TOML at ``$DISTRODEBUG_CONFIG`` or ``$XDG_CONFIG_HOME/distrodebug/config.toml``
(``~/.config/distrodebug/config.toml``)::

    image = "registry.example.com/tools/busybox:1"   # debug image
    timeout = 120                                      # seconds to wait for a sidecar or pod
    debugger_idle = 600     # Kubernetes: an exec debugger with nothing run in it this long exits
    max_debuggers = 16      # Kubernetes: ephemeral debuggers of ours one pod may hold (forever)
    warm_idle = 60          # Docker: a warm sidecar unused this long exits; 0 starts one per command
    record = true           # record every interactive shell (asciicast v2; --no-record: not this one)
    require_reason = false  # shell, exec, cp and dump refuse to start without --reason

Environment: ``DISTRODEBUG_RECORD=0`` and ``DISTRODEBUG_REQUIRE_REASON=1`` (also true/false, yes/no).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from distrodebug.errors import UsageError
from distrodebug.model import DEFAULT_TIMEOUT

DEFAULT_IMAGE = "distrodebug/busybox:1"

#: Docker's default detach keys (ctrl-p, ctrl-q) would swallow ^P; this sequence is rare in shells.
DETACH_KEYS = "ctrl-],ctrl-]"
#: The bytes those keys type (0x1d twice), which the Docker runtime watches for itself.
DETACH_BYTES = b"\x1d\x1d"


@dataclass(frozen=True)
class Settings:
    image: str = DEFAULT_IMAGE
    timeout: float = DEFAULT_TIMEOUT
    debugger_idle: int = 600
    max_debuggers: int = 16
    warm_idle: int = 60
    #: Where the image setting came from, so the banner can say why this image was used.
    image_source: str = "default"
    #: Record interactive shells; refuse shell, exec, cp and dump without a --reason.
    record: bool = True
    require_reason: bool = False


def config_path() -> Path:
    explicit = os.environ.get("DISTRODEBUG_CONFIG")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "distrodebug" / "config.toml"


def load_settings(image_flag: str | None = None, timeout_flag: float | None = None) -> Settings:
    """Resolve the settings for one command."""
    config = _read_config(config_path())
    image, source = DEFAULT_IMAGE, "default"
    configured = config.get("image")
    if isinstance(configured, str):
        image, source = configured, f"config file {config_path()}"
    if os.environ.get("DISTRODEBUG_IMAGE"):
        image, source = os.environ["DISTRODEBUG_IMAGE"], "DISTRODEBUG_IMAGE"
    if image_flag is not None:
        if not image_flag.strip():
            raise UsageError("--image was given an empty name.",
                             "Name a debug image, or leave --image out for the default.")
        image, source = image_flag, "--image"
    timeout = DEFAULT_TIMEOUT
    configured_timeout = config.get("timeout")
    if isinstance(configured_timeout, int | float):
        timeout = float(configured_timeout)
    if os.environ.get("DISTRODEBUG_TIMEOUT"):
        timeout = _number(os.environ["DISTRODEBUG_TIMEOUT"], "DISTRODEBUG_TIMEOUT")
    if timeout_flag is not None:
        timeout = timeout_flag
    counts = {}
    for key, default, least in (("debugger_idle", 600, 1), ("max_debuggers", 16, 1),
                                ("warm_idle", 60, 0)):
        value = config.get(key, default)
        env = f"DISTRODEBUG_{key.upper()}"
        if os.environ.get(env):
            value = _number(os.environ[env], env)
        if not isinstance(value, int | float) or value < least:
            raise UsageError(f"{key} = {value!r} is not a {'positive' if least else 'whole'} number.",
                             f"Set {env} or '{key}' in {config_path()} to a whole number.")
        counts[key] = int(value)
    return Settings(image=image, timeout=timeout, image_source=source, **counts,
                    record=_switch(config, "record", True),
                    require_reason=_switch(config, "require_reason", False))


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


def _switch(config: dict[str, object], key: str, default: bool) -> bool:
    """A yes/no setting: the environment over the config file over ``default``."""
    env = f"DISTRODEBUG_{key.upper()}"
    value = config.get(key, default)
    if not isinstance(value, bool):
        raise UsageError(f"{key} = {value!r} in {config_path()} is not true or false.",
                         f"Write '{key} = true' or '{key} = false'.")
    text = os.environ.get(env)
    if text is not None:
        if text.strip().lower() not in (*_TRUE, *_FALSE):
            raise UsageError(f"{env}={text!r} is not a yes or no.", f"Set {env}=1 or {env}=0.")
        value = text.strip().lower() in _TRUE
    return value


def _number(text: str, name: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"{name}={text!r} is not a number of seconds.", f"Set {name}=120.") from None


def _read_config(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return {}  # the usual case: no tomllib to import (6 ms of every command)
    except OSError as exc:
        raise UsageError(
            f"The config file {path} cannot be read: {exc}.",
            "Fix or remove it, or point DISTRODEBUG_CONFIG at another file.",
        ) from None
    import tomllib

    try:
        return tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(
            f"The config file {path} cannot be read: {exc}.",
            "Fix or remove it, or point DISTRODEBUG_CONFIG at another file.",
        ) from None
