"""The debug flow (session.py) with a fake runtime: what it asks the runtime, in what order, and
that it always removes the sidecar. The same flow runs against the real engine in tests/docker."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import pytest

from distrodebug import session
from distrodebug.audit.witness import Witness
from distrodebug.errors import Interrupted, TargetChanged, TargetNotDebuggable, UsageError
from distrodebug.model import (
    STDOUT,
    DebugOptions,
    DumpMeta,
    ImageInfo,
    Mode,
    Privileges,
    RuntimeState,
    SidecarSpec,
    TargetInfo,
)
from distrodebug.runtimes.base import Runtime
from distrodebug.settings import Settings
from distrodebug.target import Target


class FakeStream:
    def __init__(self, output: bytes) -> None:
        self._chunks = [output] if output else []
        self.sent = b""
        # A descriptor that select() always finds readable, as a live stream would be.
        self._fd, done = os.pipe()
        os.close(done)

    def fileno(self) -> int:
        return self._fd

    def send(self, data: bytes) -> None:
        self.sent += data

    def recv(self) -> list[tuple[int, bytes]]:
        return [(STDOUT, self._chunks.pop(0))] if self._chunks else []

    def readinto_stdout(self, view: memoryview, on_stderr: Callable[[bytes], None]) -> int:
        if not self._chunks:
            return 0
        data = self._chunks.pop(0)
        view[: len(data)] = data
        return len(data)

    def pending(self) -> bool:
        return bool(self._chunks)

    def close_write(self) -> None:
        pass

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


@dataclass
class FakeSidecar:
    runtime: FakeRuntime
    code: int
    stream: FakeStream
    id: str = "sidecar-1"
    name: str = "distrodebug-x"
    notes: list[str] = field(default_factory=list)

    def resize(self, rows: int, cols: int) -> None:
        pass

    def wait(self) -> int:
        return self.code

    def remove(self) -> None:
        self.runtime.calls.append("remove")


class FakeRuntime:
    kind = "fake"
    endpoint = "fake://"

    def __init__(self, status: str = "running", code: int = 0, output: bytes = b"out\n",
                 state_after: str = "running", fail_start: BaseException | None = None) -> None:
        self.status, self.code, self.output = status, code, output
        self.state_after, self.fail_start = state_after, fail_start
        self.calls: list[str] = []
        self.specs: list[SidecarSpec] = []
        self.options: list[DebugOptions] = []

    def inspect(self, target: Target) -> TargetInfo:
        self.calls.append("inspect")
        return TargetInfo(id="t1", name=target.name, image="app:1", image_id="sha256:1",
                          status=self.status, user="65532")

    def ensure_image(self, ref: str, notice: Callable[[str], None]) -> ImageInfo:
        self.calls.append("ensure_image")
        return ImageInfo(ref=ref, id="sha256:tools")

    def privileges(self, info: TargetInfo, options: DebugOptions) -> tuple[Mode, Privileges]:
        self.calls.append("privileges")
        self.options.append(options)
        mode: Mode = "join" if info.status == "running" else "snapshot"
        return mode, Privileges("0", ("SYS_PTRACE",), False, "chroot", "because")

    def start_sidecar(self, spec: SidecarSpec, info: TargetInfo) -> FakeSidecar:
        self.calls.append("start")
        self.specs.append(spec)
        if self.fail_start is not None:
            failure, self.fail_start = self.fail_start, None
            raise failure
        return FakeSidecar(self, self.code, FakeStream(self.output))

    def target_state(self, info: TargetInfo) -> str:
        return self.state_after

    def where(self, mode: Mode, info: TargetInfo, privileges: Privileges) -> str:
        return "somewhere"

    def announce(self, info: TargetInfo, message: str) -> str:
        return ""

    def gone_hint(self, info: TargetInfo) -> str:
        return "ask the fake what happened"

    def audit_identity(self, info: TargetInfo) -> dict[str, str]:
        return {"container_id": f"fake-{info.id}", "fake_slot": "7"}

    def memory_attempts(self, options: DebugOptions, owner: tuple[int, int] | None) -> list[DebugOptions]:
        return [options]

    def server_version(self) -> str:
        return "1"

    @contextlib.contextmanager
    def read_archive(self, info: TargetInfo, path: str) -> Iterator[BinaryIO]:
        raise NotImplementedError
        yield

    def write_archive(self, info: TargetInfo, into: str, source: BinaryIO) -> None:
        raise NotImplementedError

    def is_dir(self, info: TargetInfo, path: str) -> bool:
        return False

    def dump_meta(self, info: TargetInfo) -> DumpMeta:
        return DumpMeta(identity={}, members={})

    def volatile_state(self, info: TargetInfo) -> RuntimeState:
        return RuntimeState(captured="2026-11-30T07:00:00Z", state={})


class _UI:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def notice(self, text: str) -> None:
        self.lines.append(text)


def _term() -> tuple[session.Terminal, int]:
    read_out, write_out = os.pipe()
    null = os.open(os.devnull, os.O_RDONLY)
    return session.Terminal(stdin_fd=null, stdout_fd=write_out, stderr_fd=write_out), read_out


def _run(runtime: Runtime, request: session.SessionRequest) -> tuple[session.SessionResult, bytes]:
    term, out = _term()
    result = session.run(request, runtime, Settings(image="tools:1"), _UI(), term)
    os.close(term.stdout_fd)
    with os.fdopen(out, "rb") as handle:
        return result, handle.read()


def test_exec_runs_the_flow_in_order_and_returns_the_commands_status() -> None:
    runtime = FakeRuntime(code=3)
    options = DebugOptions(user="65532", profile="auto", timeout=9)
    result, out = _run(runtime, session.SessionRequest(Target("container", "web"), ("ls",), options))
    assert result.exit_code == 3 and out == b"out\n"
    assert runtime.calls == ["inspect", "privileges", "ensure_image", "start", "remove"]
    assert runtime.options == [options]
    (spec,) = runtime.specs
    assert spec.options == options and spec.argv[-1] == "ls" and spec.image == "tools:1"
    assert spec.labels["io.distrodebug.target"] == "web"


def test_a_target_that_vanishes_mid_session_says_what_to_run() -> None:
    runtime = FakeRuntime(state_after="removed", code=137)  # killed with its target
    with pytest.raises(TargetNotDebuggable, match="stopped or was removed") as caught:
        _run(runtime, session.SessionRequest(Target("container", "web"), ("true",)))
    assert caught.value.hint == "ask the fake what happened"
    assert runtime.calls[-1] == "remove"


def test_a_commands_own_status_needs_no_look_at_the_target() -> None:
    runtime = FakeRuntime(state_after="removed", code=3)  # e.g. the command stopped the app
    result, _ = _run(runtime, session.SessionRequest(Target("container", "web"), ("true",)))
    assert result.exit_code == 3


def test_a_target_that_changes_state_at_start_is_planned_again() -> None:
    runtime = FakeRuntime(fail_start=TargetChanged("restarting", ""))
    result, _ = _run(runtime, session.SessionRequest(Target("container", "web"), ("true",)))
    assert result.exit_code == 0
    assert runtime.calls.count("inspect") == 2 and runtime.calls.count("start") == 2


def test_ctrl_c_during_start_removes_nothing_it_did_not_make_and_is_exit_130() -> None:
    runtime = FakeRuntime(fail_start=KeyboardInterrupt())
    with pytest.raises(Interrupted) as caught:
        _run(runtime, session.SessionRequest(Target("container", "web"), ("true",)))
    assert caught.value.exit_code == 130
    assert "remove" not in runtime.calls  # nothing was started, nothing to remove


def test_shell_without_a_terminal_is_a_usage_error_before_anything_is_asked() -> None:
    runtime = FakeRuntime()
    with pytest.raises(UsageError):
        _run(runtime, session.SessionRequest(Target("container", "web"), None))
    assert runtime.calls == []


def test_banner_takes_the_runtimes_words_for_where_the_user_is() -> None:
    info = TargetInfo(id="t", name="web", image="app:1", image_id="", status="running")
    priv = Privileges("0", (), False, "chroot", "the target runs as root")
    line = session.banner(info, "join", priv, "tools:1", "in the target's root")
    assert line == ("distrodebug: web (app:1, running) · sidecar tools:1 as root: the target runs "
                    "as root · in the target's root")


@pytest.mark.usefixtures("private_state")
def test_the_audit_entry_names_the_target_with_the_runtimes_own_ids() -> None:
    """The witness asks the runtime which IDs tie the entry to the platform's records; it does
    not guess them from the runtime's name."""
    runtime = FakeRuntime()
    target = Target("container", "web")
    witness = Witness("exec", ["exec", "web", "--", "true"], target, "a test", record=False, ui=_UI())
    with session.witnessed_by(witness):
        result, _ = _run(runtime, session.SessionRequest(target, ("true",)))
    entry = witness.finish(result.exit_code)
    assert entry["target"]["runtime"] == "fake"
    assert entry["target"]["container_id"] == "fake-t1" and entry["target"]["fake_slot"] == "7"
    assert entry["target"]["image_id"] == "sha256:1" and entry["mode"] == "join"
