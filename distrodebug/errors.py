"""One error root for distrodebug: each error knows its exit code and what the user should do next.

The CLI prints ``message`` and ``hint`` as one paragraph on stderr and exits with ``exit_code``;
nothing else in the package prints or exits.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit statuses of distrodebug itself (a debugged command's own status passes through)."""

    OK = 0
    #: ``verify`` or ``audit verify`` found a mismatch, ``doctor`` found that debugging cannot work.
    CHECK_FAILED = 1
    #: The command line itself was wrong (unknown flag, missing argument).
    USAGE = 2
    #: ``verify``: the bundle matches its manifest, but its signature (BUNDLE.sig) is missing
    #: while ``--signer`` asks for one, is bad, or is not by a key the ``--signer`` file trusts.
    SIGNATURE_FAILED = 3
    #: distrodebug or the engine/cluster failed (like ``docker run``'s 125).
    FAILED = 125
    #: The command was found but could not be run (like ``docker run``'s 126).
    CANNOT_INVOKE = 126
    #: The command was not found (like ``docker run``'s 127).
    NOT_FOUND = 127
    #: Interrupted by Ctrl-C (128 + SIGINT).
    INTERRUPTED = 130
    #: Whatever read our stdout went away (128 + SIGPIPE): `distrodebug exec T -- yes | head -1`.
    BROKEN_PIPE = 141


class DistrodebugError(Exception):
    """Root of every error the CLI reports as a clear paragraph instead of a traceback."""

    exit_code: int = ExitCode.FAILED

    def __init__(self, message: str, hint: str = "", *, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def paragraph(self) -> str:
        """The message and the hint as one paragraph."""
        return f"{self.message} {self.hint}".strip()


class UsageError(DistrodebugError):
    """The words on the command line do not make a valid request."""

    exit_code = ExitCode.USAGE


class InvalidTarget(UsageError):
    """A target or image reference that cannot be parsed."""


class NoSuchTarget(DistrodebugError):
    """The named container, pod or image does not exist."""


class AmbiguousTarget(DistrodebugError):
    """A name or ID prefix matches more than one container."""


class TargetNotDebuggable(DistrodebugError):
    """The target exists but is in a state we cannot join (paused, removed mid-session...)."""


class EngineUnreachable(DistrodebugError):
    """No Docker engine or Kubernetes API answers where the configuration points."""


class PermissionDenied(DistrodebugError):
    """The engine or cluster refused us (socket permission, RBAC, admission)."""


class ImageUnavailable(DistrodebugError):
    """The debug image is absent locally and cannot be pulled."""


class SidecarFailed(DistrodebugError):
    """The debug sidecar could not be created or started, or died unexpectedly."""


class TargetChanged(SidecarFailed):
    """The target changed state between inspection and start (a crash loop restarting it)."""


class EngineGone(DistrodebugError):
    """The engine stopped answering in the middle of a session."""


class Interrupted(DistrodebugError):
    """Ctrl-C, SIGTERM or SIGHUP ended the command; everything we created was removed."""

    exit_code = ExitCode.INTERRUPTED


class OutputClosed(DistrodebugError):
    """Our stdout is a pipe whose reader went away; the command was ended like any other
    interrupt, with 128 + SIGPIPE as a shell reports a piped tool killed by it."""

    exit_code = ExitCode.BROKEN_PIPE


class OutputFailed(DistrodebugError):
    """Our stdout could not be written (a full disk behind a redirection)."""


class BundleError(DistrodebugError):
    """A dump bundle could not be written, read, verified or extracted."""


class BundleDamaged(BundleError):
    """A bundle that is truncated, corrupt, malformed or too large to be one of ours: a check
    that failed, like a hash mismatch."""

    exit_code = ExitCode.CHECK_FAILED
