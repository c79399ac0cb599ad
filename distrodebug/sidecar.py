"""What the sidecar runs: its entry script and the full SidecarSpec. Pure functions only.

The join-mode script never writes into the target. It keeps one process P (the outer shell)
outside the chroot, so after ``chroot /proc/<pid>/root`` the sidecar's own files stay reachable at
``/proc/P/root`` and its tools go on PATH from there. The outer shell must not exec chroot in
place (busybox ash does that for the last command of ``sh -c``), hence the ``rc=$?`` after it.
The scripts avoid ``$$`` and ``$(NAME)``: Kubernetes expands those in env values and commands.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from distrodebug.model import DebugOptions, Mode, Privileges, SidecarSpec, TargetInfo, is_root_user

SHELL = "/bin/sh"

# The process of an exec debugger (Kubernetes) or a warm sidecar (Docker): it waits while
# anything else runs in its container (the commands exec'd into it share its cgroup) and exits
# after DD_IDLE seconds with nothing. No command substitution and no $$ (Kubernetes rewrites $$
# in commands); reads only, no forks but sleep, so the scan itself never looks like activity.
IDLE_SCRIPT = r"""
read -r me _ _ parent _ < /proc/self/stat
read -r mine < /proc/self/cgroup
idle=0
while [ "$idle" -lt "${DD_IDLE:-600}" ]; do
  sleep 5
  busy=
  for f in /proc/[0-9]*/cgroup; do
    p=${f#/proc/}; p=${p%/cgroup}
    case "$p" in "$me"|"$parent") continue ;; esac
    read -r line < "$f" 2>/dev/null || continue
    if [ "$line" = "$mine" ]; then busy=1; break; fi
  done
  if [ -n "$busy" ]; then idle=0; else idle=$((idle + 5)); fi
done
"""

_WAIT_FOR_CLIENT = r"""
# An interactive shell waits for one line from the client before it starts, so its first prompt
# is written to an attached client (Kubernetes attaches only after the container started). No
# client within a minute (DD_WAIT: --attach=false asks for longer): end, rather than leave a
# debugger nobody can remove. DD_GO=1 asks for
# the same wait before a command (Kubernetes pods we create, attached after they start).
if [ $# -eq 0 ] || [ "$DD_GO" = 1 ]; then
  stty -echo 2>/dev/null
  read -r -t "${DD_WAIT:-60}" _ || exit 0
  stty echo 2>/dev/null
fi
"""

# Sets DD_PID to the target's main process. Where the runtime told us the target container's ID
# (DD_CID: Kubernetes), PID 1 may be someone else: pause with shareProcessNamespace, the node's
# init with hostPID. The target's processes are the ones whose cgroup path holds its ID; the
# lowest PID among them is its main process. No match is refused rather than guessed: a chroot
# into the wrong root would show (or, for cp, write) another container's or the node's files.
FIND_TARGET = r"""
if [ -n "$DD_CID" ]; then
  DD_PID=
  for f in /proc/[0-9]*/cgroup; do
    while read -r line; do
      case "$line" in *"$DD_CID"*)
        p=${f#/proc/}; p=${p%/cgroup}
        if [ -z "$DD_PID" ] || [ "$p" -lt "$DD_PID" ]; then DD_PID=$p; fi
        break ;;
      esac
    done < "$f" 2>/dev/null
  done
  if [ -z "$DD_PID" ]; then
    echo "distrodebug: no process of the target container (${DD_CID%"${DD_CID#????????????}"})" \
      "is visible from the debugger; it may have just restarted, or the runtime did not" \
      "share its PID namespace with the debugger" >&2
    exit 125
  fi
fi
export DD_PID
"""

#: DD_MARK=1 (Kubernetes' attached interactive debuggers only): the join script's last output is
#: EXIT_MARK, the status as digits, then BEL: an OSC sequence with a number no terminal uses, so
#: terminals ignore it. The attach stream takes it out of the output and keeps the status
#: (runtimes/kubernetes/stream.py: ExitMarks), which spares a request to the API server.
EXIT_MARK = b"\x1b]7735;distrodebug-exit="

# $1.. is the command to run; none means an interactive shell.
_JOIN_SCRIPT = _WAIT_FOR_CLIENT + FIND_TARGET + r"""
# Our own pid without dollar-dollar, which Kubernetes rewrites in env and command values.
read -r P _ < /proc/self/stat
M=$DD_MARK
unset DD_MARK
T=/proc/$P/root
R=/proc/$DD_PID/root
TOOLS="$T/bin:$T/sbin:$T/usr/bin:$T/usr/sbin:$T/usr/local/bin:$T/usr/local/sbin"
if [ "$DD_VIEW" = chroot ] && chroot "$R" "$T$DD_SH" -c : 2>/dev/null; then
  export PATH="$TOOLS:$DD_TARGET_PATH" DISTRODEBUG_TOOLS="$T" DISTRODEBUG_ROOT=/
  chroot "$R" "$T$DD_SH" -c 'eval "$DD_INNER"' distrodebug "$@"
  rc=$?
else
  if [ "$DD_VIEW" = chroot ]; then
    echo "distrodebug: cannot chroot into the target; its root is at $R" >&2
  fi
  export DISTRODEBUG_ROOT="$R" DISTRODEBUG_TOOLS=/
  cd "$R$DD_WORKDIR" 2>/dev/null || cd "$R" 2>/dev/null || cd /
  S=$DD_SH
  unset DD_SCRIPT DD_INNER DD_PID DD_CID DD_VIEW DD_SH DD_TARGET_PATH DD_WORKDIR DD_TOOLS DD_GO
  if [ $# -eq 0 ]; then "$S" -i; else "$@"; fi
  rc=$?
fi
if [ "$M" = 1 ]; then printf '\033]7735;distrodebug-exit=%d\007' "$rc"; fi
exit $rc
"""

# Runs inside the chroot; $DISTRODEBUG_TOOLS leads back to the sidecar's own files.
_INNER_SCRIPT = r"""
cd "$DD_WORKDIR" 2>/dev/null || cd /
unset DD_SCRIPT DD_INNER DD_PID DD_CID DD_VIEW DD_SH DD_TARGET_PATH DD_WORKDIR DD_TOOLS DD_GO
# busybox sh runs its applets before anything on PATH: a toolbox's real tool of the same name
# (ip, nc; toolbox/layout.py) is called by its path, and the interactive shell aliases them.
B=$DISTRODEBUG_TOOLS/usr/local/bin
[ -f "$DISTRODEBUG_TOOLS/etc/distrodebug.rc" ] && export ENV="$DISTRODEBUG_TOOLS/etc/distrodebug.rc"
if [ $# -gt 0 ] && [ -x "$B/$1" ]; then B=$B/$1; shift; set -- "$B" "$@"; fi
unset B
[ $# -eq 0 ] && exec "$DISTRODEBUG_TOOLS/bin/sh" -i
exec "$@"
"""

# The throwaway copy's root is the container's own root; the tools are mounted at $DD_TOOLS.
_COPY_SCRIPT = r"""
export PATH="$DD_TOOLS:$DD_TARGET_PATH" DISTRODEBUG_TOOLS="$DD_TOOLS" DISTRODEBUG_ROOT=/
""" + _WAIT_FOR_CLIENT + r"""
cd "$DD_WORKDIR" 2>/dev/null || cd /
unset DD_SCRIPT DD_INNER DD_PID DD_CID DD_VIEW DD_SH DD_TARGET_PATH DD_WORKDIR DD_TOOLS DD_GO
[ $# -eq 0 ] && exec "$DISTRODEBUG_TOOLS/sh" -i
exec "$@"
"""


# A node debugging pod: the session stays in the debugger; the host's root is at /host.
_NODE_SCRIPT = _WAIT_FOR_CLIENT + r"""
export DISTRODEBUG_ROOT=/host DISTRODEBUG_TOOLS=/
[ -d /host ] && cd /host
unset DD_SCRIPT DD_INNER DD_PID DD_CID DD_VIEW DD_SH DD_TARGET_PATH DD_WORKDIR DD_TOOLS DD_GO
[ $# -eq 0 ] && exec /bin/sh -i
exec "$@"
"""

def with_target_pid(pid: int, argv: Sequence[str]) -> tuple[str, ...]:
    """``argv`` run in the sidecar with DD_PID set to the target's main process.

    ``pid`` is what the runtime knows (1, or the host PID of a ``--pid=host`` target); with a
    container ID in the sidecar's environment the process is looked up instead (FIND_TARGET).
    """
    return ("sh", "-c", f'DD_PID=$1; shift; {FIND_TARGET}\nexec "$@"', "distrodebug", str(pid), *argv)


# The scripts travel in the environment so that `ps` in the session shows one short line for us.
_EVAL = 'eval "$DD_SCRIPT"'


def prompt(name: str) -> str:
    """PS1 for the interactive shell: says where the user is at a glance."""
    return f"[distrodebug {name}] \\w \\$ "


def entry_argv(
    mode: Mode,
    command: Sequence[str] | None,
    *,
    reaper: str | None,
    tools_mount: str,
) -> tuple[str, ...]:
    """The sidecar's full argv: [reaper] shell -c SCRIPT distrodebug [command...]."""
    if mode in ("join", "node"):
        head: tuple[str, ...] = (reaper,) if reaper else ()
        argv = (*head, SHELL, "-c", _EVAL, "distrodebug")
    else:
        argv = (f"{tools_mount}/sh", "-c", _EVAL, "distrodebug")
    return (*argv, *(command or ()))


def build_spec(
    *,
    info: TargetInfo,
    mode: Mode,
    image: str,
    privileges: Privileges,
    command: Sequence[str] | None,
    tty: bool,
    stdin: bool,
    labels: Mapping[str, str],
    reaper: str | None,
    annotations: Mapping[str, str] | None = None,
    options: DebugOptions | None = None,
    term: str | None = None,
    tools_mount: str = "/.distrodebug",
) -> SidecarSpec:
    """The SidecarSpec for one session."""
    env = {
        "DD_SCRIPT": {"join": _JOIN_SCRIPT, "node": _NODE_SCRIPT}.get(mode, _COPY_SCRIPT),
        "DD_INNER": _INNER_SCRIPT,
        "DD_PID": str(info.pid),
        "DD_CID": info.container_id,
        "DD_VIEW": privileges.view,
        "DD_SH": SHELL,
        "DD_TARGET_PATH": info.path,
        "DD_WORKDIR": info.workdir or "/",
        "DD_TOOLS": tools_mount,
        "PS1": prompt(info.name),
        "HOME": "/root" if is_root_user(privileges.user) else "/tmp",
    }
    if term:
        env["TERM"] = term
    return SidecarSpec(
        image=image,
        argv=entry_argv(mode, command, reaper=reaper, tools_mount=tools_mount),
        mode=mode,
        target_id=info.id,
        labels=dict(labels),
        annotations=dict(annotations or {}),
        env=env,
        user=privileges.user,
        cap_add=privileges.cap_add,
        privileged=privileges.privileged,
        tty=tty,
        stdin=stdin,
        join_ipc=mode == "join" and info.ipc_shareable,
        tools_mount=tools_mount,
        security_context=privileges.security_context,
        profile=privileges.profile,
        cap_drop=privileges.cap_drop,
        no_new_privileges=privileges.no_new_privileges,
        pids_limit=privileges.pids_limit,
        memory_limit=privileges.memory_limit,
        options=options or DebugOptions(),
    )
