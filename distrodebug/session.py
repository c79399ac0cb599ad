"""The debug flow, written once for every runtime.

inspect -> check -> choose privileges -> ensure image -> start sidecar -> attach or run -> clean up

The core never prints: it reports through the ``UI`` it is given and returns a SessionResult.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import stat
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol

from distrodebug import labels, privileges, sidecar, terminal, tracking
from distrodebug.errors import (
    Interrupted,
    SidecarFailed,
    TargetChanged,
    TargetNotDebuggable,
    UsageError,
)
from distrodebug.model import DebugOptions, Mode, Privileges, SidecarSpec, TargetInfo
from distrodebug.runtimes.base import Runtime, Sidecar
from distrodebug.settings import Settings
from distrodebug.target import Target


class UI(Protocol):
    def notice(self, text: str) -> None:
        """One line for the user on stderr."""
        ...


@dataclass(frozen=True)
class Terminal:
    """The process's standard streams, injectable so tests can run the flow in-process."""

    stdin_fd: int = 0
    stdout_fd: int = 1
    stderr_fd: int = 2

    def stdin_is_tty(self) -> bool:
        return os.isatty(self.stdin_fd)

    def stdin_has_data(self) -> bool:
        """True when stdin is a pipe, file or socket (not a terminal, not /dev/null)."""
        try:
            mode = os.fstat(self.stdin_fd).st_mode
        except OSError:
            return False
        return stat.S_ISFIFO(mode) or stat.S_ISREG(mode) or stat.S_ISSOCK(mode)


@dataclass(frozen=True)
class SessionRequest:
    target: Target
    #: None opens an interactive shell; otherwise the command to run without a TTY.
    command: tuple[str, ...] | None = None
    options: DebugOptions = field(default_factory=DebugOptions)
    #: For exec: forward our stdin. None means "when stdin is a pipe or a file".
    stdin: bool | None = None
    #: Run the command in the sidecar itself, not in the target's root (dump, cp).
    outside_target: bool = False
    #: "read" or "write" for cp and dump: the sidecar keeps only what that job needs.
    job: privileges.Job = "session"


@dataclass
class SessionResult:
    exit_code: int
    info: TargetInfo
    mode: Mode
    privileges: Privileges
    notes: list[str] = field(default_factory=list)


def banner(info: TargetInfo, mode: Mode, priv: Privileges, image: str, where: str) -> str:
    """The one line that tells the user what they are looking at."""
    head = f"distrodebug: {info.name}"
    if mode == "image":
        head += " (image, entrypoint not run)"
    elif mode == "node":
        head = f"distrodebug: node/{info.name}"
    else:
        head += f" ({info.image or info.image_id[:19]}, {info.status})"
    return f"{head} · sidecar {image} as {priv.describe()}: {priv.reason} · {where}"


@contextlib.contextmanager
def _signals_blocked() -> Iterator[None]:
    """Let cleanup finish even if the user presses Ctrl-C again or the terminal closes."""
    sigs = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class Recording(terminal.Tap, Protocol):
    def close(self) -> str:
        """Finish the recording; its sha256."""
        ...


class Witness(Protocol):
    """Whatever keeps a record of the commands run against targets (distrodebug.audit).

    Set around a command with :func:`witnessed_by`, so the one flow (``run`` for shell and exec,
    ``capture`` for cp and dump) reports to it without each command passing it down.
    """

    def started(self, runtime: Runtime, chosen: Plan, started: Sidecar) -> None:
        """A sidecar of this command is running (called once per sidecar)."""
        ...

    def recording(self, rows: int, cols: int) -> Recording | None:
        """The tap that records an interactive session, or None when it is not recorded."""
        ...


_witness: ContextVar[Witness | None] = ContextVar("distrodebug_witness", default=None)


@contextlib.contextmanager
def witnessed_by(witness: Witness | None) -> Iterator[None]:
    """Report every session started inside the block to ``witness``."""
    token = _witness.set(witness)
    try:
        yield
    finally:
        _witness.reset(token)


@dataclass(frozen=True)
class Plan:
    """Everything decided before the sidecar starts."""

    info: TargetInfo
    mode: Mode
    privileges: Privileges
    image: str
    spec: SidecarSpec
    forward_stdin: bool


def plan(
    request: SessionRequest,
    runtime: Runtime,
    settings: Settings,
    ui: UI,
    term: Terminal,
) -> Plan:
    """inspect -> check -> choose privileges -> ensure image -> build the spec."""
    interactive = request.command is None
    info = runtime.inspect(request.target)
    if info.note:
        ui.notice(f"distrodebug: {info.note}")
    mode, priv = runtime.privileges(info, request.options)
    if request.outside_target:
        priv = dataclasses.replace(priv, view="proc")
    priv = privileges.for_job(priv, info, request.job)
    image = runtime.ensure_image(settings.image, ui.notice)
    forward_stdin = interactive or (
        request.stdin if request.stdin is not None else term.stdin_has_data()
    )
    spec = sidecar.build_spec(
        info=info,
        mode=mode,
        image=image.ref,
        privileges=priv,
        command=request.command,
        tty=interactive,
        stdin=forward_stdin,
        labels=labels.session_labels(session_id=labels.new_session_id(), target=info.name),
        annotations=labels.session_annotations(target=info.name),
        reaper=image.labels.get(labels.REAPER),
        options=request.options,
        term=os.environ.get("TERM", "xterm") if interactive else None,
    )
    return Plan(info, mode, priv, image.ref, spec, forward_stdin)


@contextlib.contextmanager
def started_sidecar(runtime: Runtime, chosen: Plan) -> Iterator[Sidecar]:
    """Start the sidecar; always remove it, whatever ends the block (signals included)."""
    started: Sidecar | None = None
    made: list[Sidecar] = []
    try:
        with terminal.hangup_signals():
            with tracking.collecting() as made:
                started = runtime.start_sidecar(chosen.spec, chosen.info)
            witness = _witness.get()
            if witness is not None:
                witness.started(runtime, chosen, started)
            yield started
    except KeyboardInterrupt:
        raise Interrupted("Interrupted; the sidecar was removed.") from None
    except terminal.Hangup as exc:
        raise Interrupted(f"Received {exc}; the sidecar was removed.",
                          exit_code=128 + exc.signum) from None
    finally:
        # What the runtime tracked as it made it, even if the interrupt came before `started`
        # was assigned; a runtime that tracks nothing still has `started` removed.
        doomed = [*made, *([started] if started is not None and started not in made else [])]
        with _signals_blocked():
            for sidecar in doomed:
                sidecar.remove()


@contextlib.contextmanager
def started_replanning(
    runtime: Runtime, chosen: Plan, replan: Callable[[], Plan]
) -> Iterator[tuple[Sidecar, Plan]]:
    """Start the sidecar; if the target changed state meanwhile (a crash loop), plan once more."""
    try:
        with started_sidecar(runtime, chosen) as started:
            yield started, chosen
            return
    except TargetChanged:
        chosen = replan()
    with started_sidecar(runtime, chosen) as started:
        yield started, chosen


def check_target_survived(runtime: Runtime, chosen: Plan, exit_code: int) -> None:
    """A sidecar killed with its target must not pass for a command's own exit status.

    Only a status a command rarely chooses (125 and up: killed by a signal, or our own failure)
    costs a look at the target, and the look is fresh. A paused target is still there: the
    command's own status stands.
    """
    if chosen.mode != "join" or exit_code < 125:
        return
    state = runtime.target_state(chosen.info)
    # A command in a warm sidecar is killed with the target's PID namespace, and its status
    # can come back before the engine has noticed its target stopped: look again, briefly.
    for _ in range(10 if exit_code == 128 + signal.SIGKILL else 0):
        if state not in ("running", "paused"):
            break
        time.sleep(0.1)
        state = runtime.target_state(chosen.info)
    if state not in ("running", "paused"):
        name = chosen.info.name
        raise TargetNotDebuggable(
            f"'{name}' stopped or was removed while the session ran, which ended the sidecar "
            f"too (exit status {exit_code}).",
            runtime.gone_hint(chosen.info),
        )


def run(
    request: SessionRequest,
    runtime: Runtime,
    settings: Settings,
    ui: UI,
    term: Terminal | None = None,
) -> SessionResult:
    """Run one shell or exec session against the target and return its outcome."""
    term = term or Terminal()
    interactive = request.command is None
    if interactive and request.options.attach and not term.stdin_is_tty():
        raise UsageError(
            "'shell' needs a terminal on stdin, and stdin is not one.",
            "Use 'distrodebug exec TARGET -- COMMAND' to run a command from a script or a pipe.",
        )
    chosen = plan(request, runtime, settings, ui, term)
    result = SessionResult(125, chosen.info, chosen.mode, chosen.privileges)
    with started_replanning(runtime, chosen, lambda: plan(request, runtime, settings, ui, term)) as (
        started,
        chosen,
    ):
        if not request.options.attach:
            pass  # the runtime started it and says, in its notes, how to attach
        elif interactive:
            where = runtime.where(chosen.mode, chosen.info, chosen.privileges)
            ui.notice(banner(chosen.info, chosen.mode, chosen.privileges, chosen.image, where))
            _interactive(started, term)
        else:
            assert started.stream is not None
            terminal.pump(
                started.stream,
                stdin_fd=term.stdin_fd if chosen.forward_stdin else None,
                stdout_fd=term.stdout_fd,
                stderr_fd=term.stderr_fd,
            )
        result.exit_code = started.wait()
    # Notes come after the cleanup too ("kept pod ..."), so read them once it is done.
    result.notes.extend(started.notes)
    check_target_survived(runtime, chosen, result.exit_code)
    if chosen.mode != "join" and interactive and request.options.attach and not request.options.keep:
        result.notes.append("the throwaway copy and everything changed in it were removed")
    return result


def _interactive(started: Sidecar, term: Terminal) -> None:
    stream = started.stream
    if stream is None:
        raise SidecarFailed("The sidecar started without a terminal stream.", "Report this as a bug.")
    witness = _witness.get()
    size = terminal.window_size(term.stdin_fd)
    recording = witness.recording(*size) if witness is not None else None

    def resize() -> None:
        nonlocal size
        rows, cols = terminal.window_size(term.stdin_fd)
        started.resize(rows, cols)
        if recording is not None and (rows, cols) != size:
            recording.resize(rows, cols)
        size = (rows, cols)

    try:
        resize()
        stream.send(b"\n")  # the entry script waits for this line before starting the shell
        with terminal.resize_events() as resize_fd, terminal.raw_mode(term.stdin_fd):
            terminal.pump(
                stream,
                stdin_fd=term.stdin_fd,
                stdout_fd=term.stdout_fd,
                stderr_fd=term.stderr_fd,
                resize_fd=resize_fd,
                on_resize=resize,
                tap=recording,
            )
    finally:
        if recording is not None:
            recording.close()


