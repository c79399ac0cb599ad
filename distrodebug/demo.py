"""`distrodebug demo`: a distroless Python app, looked at from a sidecar, then cleaned up.

The app is the Python example of the document this project grew from (FROM distroless/python3,
COPY app.py, CMD ["app.py"]), built offline from Debian packages, run as uid 65532 on a read-only
root: the hardest ordinary case, where `docker exec -it app sh` has nothing to run.
"""

from __future__ import annotations

import contextlib
import shlex
import time
from typing import Protocol

from distrodebug import labels, session
from distrodebug import toolbox as images
from distrodebug.errors import DistrodebugError
from distrodebug.runtimes.docker.runtime import DockerRuntime
from distrodebug.settings import DEFAULT_IMAGE, Settings
from distrodebug.target import Target

#: (what the step shows, the command run in the target's root view)
STEPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("There is no shell in the app's image: /bin/sh is missing in its root",
     ("sh", "-c", "ls -l /bin/sh /usr/bin/python3.11 2>&1; true")),
    ("The app's processes, seen from the sidecar (shared PID namespace)",
     ("ps", "-o", "pid,user,rss,args")),
    ("Its listening sockets (shared network namespace)", ("netstat", "-ltn")),
    ("Its files, read in place: nothing is copied into the target", ("ls", "-l", "/app")),
    ("Ask the app itself over loopback", ("wget", "-qO-", "http://127.0.0.1:8080/")),
)


class DemoUI(session.UI, Protocol):
    """The session's UI, and a heading for each step (the command line draws it)."""

    def heading(self, text: str) -> None: ...


class _Quiet:
    def __init__(self, ui: session.UI) -> None:
        self._ui = ui

    def notice(self, text: str) -> None:
        self._ui.notice(text)


def ensure_images(runtime: DockerRuntime, settings: Settings, ui: session.UI) -> None:
    """Build the demo app image, and the default toolbox if it is the one in use, when missing."""
    if settings.image == DEFAULT_IMAGE and runtime.image_labels(DEFAULT_IMAGE) is None:
        ui.notice(f"building the debug toolbox {DEFAULT_IMAGE} offline (first run only) ...")
        images.build_toolbox(runtime.import_image, DEFAULT_IMAGE)
    if runtime.image_labels(images.DEMO_REF) is None:
        ui.notice(
            f"building the distroless demo app {images.DEMO_REF} from Debian packages "
            "(first run only) ..."
        )
        images.build_python_image(runtime.import_image, images.DEMO_REF)


def run(settings: Settings, ui: DemoUI, *, interactive: bool = False, keep: bool = False) -> int:
    """Run the demo; return the exit status for the CLI."""
    runtime = DockerRuntime()
    ensure_images(runtime, settings, ui)
    session_id = labels.new_session_id()
    name = f"distrodebug-demo-{session_id}"
    tags = {**labels.session_labels(session_id=session_id, target=name, role="demo"),
            **labels.session_annotations(target=name)}
    app_id = runtime.run_container(images.DEMO_REF, name=name, labels=tags, user="65532",
                                   read_only=True)
    ui.notice(f"started {name}: {images.DEMO_REF} as uid 65532 on a read-only root")
    code = 0
    try:
        runtime.wait_listening(app_id, 10)
        time.sleep(0.5)  # let the app bind its port before we look at its sockets
        target = Target(kind="container", name=name)
        if interactive:
            result = session.run(session.SessionRequest(target=target), runtime, settings, ui)
            return result.exit_code
        for title, command in STEPS:
            ui.heading(f"{title}\n   $ {shlex.join(command)}")
            result = session.run(
                session.SessionRequest(target=target, command=command, stdin=False),
                runtime, settings, _Quiet(ui),
            )
            code = code or (result.exit_code if command[0] != "sh" else 0)
        changes = runtime.changes(app_id)
        ui.heading(f"'docker diff {name}' after all of this: {len(changes)} change(s)")
        for change in changes:
            ui.notice(f"   {change}")
    finally:
        if keep:
            ui.notice(f"left {name} running; try 'distrodebug shell {name}', remove it with "
                      f"'docker rm -f {name}'")
        else:
            with contextlib.suppress(DistrodebugError):
                # The warm sidecars the steps left beside the app go first (Podman will not remove
                # a container that others join).
                warm = [("container", ident) for ident in runtime.warm_sidecars_of(name)]
                runtime.remove_objects([*warm, ("container", app_id)])
            ui.notice(f"removed {name}")
    return code
