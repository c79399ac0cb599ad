"""How much privilege a sidecar gets, and why: the least that lets it read the target.

Pure functions of what we know about the target and what the user asked for. The reason string
ends up in the banner, so an on-call engineer can see why the sidecar was given what it has.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from distrodebug.errors import TargetNotDebuggable
from distrodebug.model import Mode, Privileges, TargetInfo, View, is_root_user


def choose_mode(info: TargetInfo) -> Mode:
    """Join a running target; copy a stopped one; refuse states that cannot be debugged."""
    if info.status == "image":
        return "image"
    if info.status == "running":
        return "join"
    if info.status == "paused":
        raise TargetNotDebuggable(
            f"'{info.name}' is paused, so its processes cannot be inspected.",
            f"Unpause it with 'docker unpause {info.name}' and run the command again.",
        )
    if info.status in ("exited", "created", "restarting"):
        return "snapshot"
    raise TargetNotDebuggable(
        f"'{info.name}' is in state '{info.status}' and cannot be debugged.",
        "Remove it and start it again, or debug its image with --image-target.",
    )


def _normal_caps(caps: tuple[str, ...]) -> tuple[str, ...]:
    seen: list[str] = []
    for cap in caps:
        name = cap.upper().removeprefix("CAP_")
        if name and name not in seen:
            seen.append(name)
    return tuple(seen)


def choose_docker(
    info: TargetInfo,
    *,
    user: str | None = None,
    cap_add: tuple[str, ...] = (),
    privileged: bool = False,
) -> Privileges:
    """Pick the sidecar's user and capabilities for a Docker target."""
    extra = _normal_caps(cap_add)
    if privileged:
        return Privileges("0", extra, True, "chroot", "--privileged was asked for")
    if user is not None:
        view: View = "chroot" if is_root_user(user) else "proc"
        why = f"--user {user} was asked for"
        if view == "proc":
            why += "; a non-root sidecar cannot chroot, so the target's root is under /proc"
        elif not info.runs_as_root:
            # Root reads another user's /proc/<pid>/root only with SYS_PTRACE.
            extra = _normal_caps(("SYS_PTRACE", *extra))
            why += f"; the target runs as user {info.user}: added SYS_PTRACE to read its root"
        return Privileges(user, extra, False, view, why)
    if info.runs_as_root:
        return Privileges(
            "0", extra, False, "chroot", "the target runs as root; the engine's default capabilities suffice"
        )
    caps = _normal_caps(("SYS_PTRACE", *extra))
    return Privileges(
        "0",
        caps,
        False,
        "chroot",
        f"the target runs as user {info.user}: added SYS_PTRACE so the sidecar may read its root "
        f"(--user {info.user.split(':', 1)[0]} avoids it but cannot chroot)",
    )


def choose_copy(*, user: str | None = None, cap_add: tuple[str, ...] = ()) -> Privileges:
    """Privileges inside a throwaway copy (stopped container or plain image): root, no extras.

    The copy is ours, so root reads everything in it without added capabilities.
    """
    if user is not None:
        return Privileges(user, _normal_caps(cap_add), False, "chroot", f"--user {user} was asked for")
    return Privileges("0", _normal_caps(cap_add), False, "chroot", "root inside a throwaway copy")


#: What a sidecar is for: an interactive or exec session, or one of our own jobs.
Job = Literal["session", "read", "write", "memory"]
#: Our jobs' process limit: a tar, a find, a few shells.
JOB_PIDS_LIMIT = 256
#: A cp or dump sidecar runs busybox tar and sh; a runaway one must not take the host\'s memory.
JOB_MEMORY_LIMIT = 256 << 20


def for_job(priv: Privileges, info: TargetInfo, job: Job) -> Privileges:
    """Trim a Docker sidecar's privileges to what cp and dump need (a session keeps them).

    Every capability is dropped; kept are SYS_CHROOT (the chroot into the target), SYS_PTRACE
    (reading /proc/<pid>/root of a process with other capabilities than ours) and, to read,
    DAC_READ_SEARCH (every file, whatever its mode). Reading process memory (``dump --memory``):
    as the target's own uid and gid (the caller asks for it with --user) every capability is
    dropped, since the kernel lets a process read the memory of a dumpable one with the same
    ids; as root it keeps SYS_PTRACE (the ptrace access check on a process whose capabilities
    are not a subset of ours) and DAC_READ_SEARCH (/proc/<pid>/mem and auxv are mode 0600/0400,
    owned by the target's uid); of the target's files it reads only its executable's ELF
    header. Writes to a root target add DAC_OVERRIDE, FOWNER and CHOWN (root in the target has
    them); writes to another user's target only SETUID and SETGID, to become that user. Always
    no-new-privileges, a pids and a memory limit. Kubernetes profiles, --privileged and an
    explicit --user are left as they are.
    """
    if job == "memory" and not (priv.profile or priv.privileged or priv.user in ("0", "root")):
        return dataclasses.replace(
            priv, cap_add=(), cap_drop=("ALL",), no_new_privileges=True, pids_limit=JOB_PIDS_LIMIT,
            memory_limit=JOB_MEMORY_LIMIT,
            reason=f"the memory job runs as the target's own user {priv.user} with every "
                   "capability dropped: the kernel lets a process read the memory of another "
                   "with the same uid and gid",
        )
    if job == "session" or priv.profile or priv.privileged or priv.user not in ("0", "root"):
        return priv
    if job == "read":
        keep: tuple[str, ...] = ("SYS_CHROOT", "SYS_PTRACE", "DAC_READ_SEARCH")
    elif job == "memory":
        keep = ("SYS_PTRACE", "DAC_READ_SEARCH")
    elif info.runs_as_root:
        keep = ("SYS_CHROOT", "SYS_PTRACE", "DAC_OVERRIDE", "FOWNER", "CHOWN")
    else:
        keep = ("SETUID", "SETGID")
    return dataclasses.replace(
        priv, cap_add=keep, cap_drop=("ALL",),
        no_new_privileges=True, pids_limit=JOB_PIDS_LIMIT, memory_limit=JOB_MEMORY_LIMIT,
        reason=f"{priv.reason}; a {job}-only job keeps only {', '.join(keep)}",
    )
