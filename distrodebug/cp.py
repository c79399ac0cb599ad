"""`cp`: copy files out of and into targets that have no tar of their own.

The tar runs in the debug sidecar, inside a chroot into the target's root (so a symlink in the
target can never lead out of it), from the sidecar's own files at /proc/<pid>/root. Writes are
checked against the target user's permissions on the destination directory and the new files
are given to that user, as if the target had written them; a read-only root fails clearly.
Stopped Docker containers are copied through the engine's archive API instead.
"""

from __future__ import annotations

import dataclasses
import os
import tarfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from distrodebug import capture, session, sidecar
from distrodebug.errors import DistrodebugError, UsageError
from distrodebug.model import TargetInfo
from distrodebug.runtimes.base import Runtime
from distrodebug.settings import Settings
from distrodebug.target import Target, parse_target

# Run by both scripts with $1 = the sidecar's files, $2 = the prefix of the target's root ("" in
# a chroot into it; /proc/<pid>/root when the sidecar shares the target's uid and cannot chroot,
# in which case no component of the path may be a symlink, or it could lead out of the root).
_COMMON = r"""
PATH=$1/bin; ROOT=$2; shift 2
nolinks() {
  [ -n "$ROOT" ] || return 0
  old=$IFS; IFS=/; set -f; cur=$ROOT
  for c in $1; do
    [ -n "$c" ] || continue
    cur=$cur/$c
    if [ -L "$cur" ]; then IFS=$old; echo "DDERR symlink ${cur#"$ROOT"}" >&2; exit 2; fi
  done
  IFS=$old; set +f
}
"""

_FROM_INNER = _COMMON + r"""
src=$1
case "$src" in */*) dir=${src%/*} ;; *) dir=. ;; esac
base=${src##*/}
[ -n "$dir" ] || dir=/
nolinks "$dir"
[ -e "$ROOT$dir/$base" ] || [ -L "$ROOT$dir/$base" ] || { echo "DDERR nosuch" >&2; exit 2; }
cd "$ROOT$dir" && tar -c -f - "$base"
"""

_TO_INNER = _COMMON + r"""
dest=$1; local=$2; uid=$3; gid=$4
nolinks "$dest"
if [ -d "$ROOT$dest" ]; then dir=$dest; name=$local
else
  case "$dest" in */*) dir=${dest%/*} ;; *) dir=. ;; esac
  [ -n "$dir" ] || dir=/
  name=${dest##*/}
  [ -d "$ROOT$dir" ] || { echo "DDERR nodir $dir" >&2; exit 2; }
fi
if [ -z "$ROOT" ] && [ -n "$uid" ] && [ "$uid" != 0 ]; then
  # Root in a chroot: check what the target's user may do, as the kernel would for it.
  set -- $(stat -c "%u %g %a" "$dir")
  m=$((0$3))
  if [ "$1" = "$uid" ]; then ok=$((m & 0200))
  elif [ "$2" = "$gid" ]; then ok=$((m & 0020))
  else ok=$((m & 0002)); fi
  [ "$ok" != 0 ] || { echo "DDERR denied $dir" >&2; exit 2; }
fi
tmp=$(mktemp -d "$ROOT${dir%/}/.distrodebug-cp.XXXXXX" 2>&1) || {
  case "$tmp" in *Read-only*) echo "DDERR readonly $dir" >&2 ;; *) echo "DDERR denied $dir" >&2 ;; esac
  exit 2; }
if tar -x -f - -C "$tmp" && rm -rf "$ROOT${dir%/}/$name" && mv "$tmp/$local" "$ROOT${dir%/}/$name"; then
  if [ -z "$ROOT" ] && [ -n "$uid" ] && [ "$uid" != 0 ]; then
    chown -R "$uid:${gid:-$uid}" "${dir%/}/$name"
  fi
  rmdir "$tmp"
else
  rc=$?; rm -rf "$tmp"; exit $rc
fi
"""

# Chroot into the target when we can (root sidecar); otherwise walk /proc/<pid>/root as its user.
_OUTER = r"""
read -r P _ < /proc/self/stat
R=/proc/$DD_PID/root
T=/proc/$P/root
if chroot "$R" "$T/bin/true" 2>/dev/null; then
  chroot "$R" "$T/bin/sh" -c "$DD_INNER_CP" sh "$T" "" "$@"
else
  sh -c "$DD_INNER_CP" sh "$T" "$R" "$@"
fi
"""


def _with_inner(inner: str) -> str:
    """The outer script with the inner one in a quoted here-document (no quoting to escape)."""
    return f"DD_INNER_CP=$(cat <<'DDEND'\n{inner}\nDDEND\n)\n{_OUTER}"


_FROM_SCRIPT = _with_inner(_FROM_INNER)
_TO_SCRIPT = _with_inner(_TO_INNER)


@dataclass(frozen=True)
class Endpoint:
    """One side of a copy: a local path, or a path inside a target."""

    path: str
    target: Target | None = None


def parse_endpoint(text: str, container: str | None = None, namespace: str | None = None) -> Endpoint:
    """'pod/api:/etc/x', 'web:/x', 'k8s://ns/pod/c:/x' are remote; anything else is local."""
    if text.startswith(("/", "./", "../", "~")) or ":" not in text:
        return Endpoint(os.path.expanduser(text))
    head, sep, path = text.partition(":")
    if head in ("k8s", "kubernetes", "docker"):  # a scheme: the path is after the next colon
        rest_head, _, path = path.partition(":")
        head = f"{head}:{rest_head}"
    if not path.startswith("/"):
        raise UsageError(f"'{text}': the path inside the target must be absolute.",
                         f"Write it as {head}:/{path}.")
    return Endpoint(path.rstrip("/") or "/", parse_target(head, container=container, namespace=namespace))


class _Errors:
    """Collects DDERR lines from the script's stderr."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.other = b""

    def __call__(self, data: bytes) -> None:
        for line in data.decode("utf-8", "replace").splitlines():
            (self.lines if line.startswith("DDERR") else []).append(line)
        self.other += data


#: The script's DDERR kinds: (error class, message, hint); {path}, {where}, {target} filled in.
_REFUSALS: dict[str, tuple[type[DistrodebugError], str, str]] = {
    "nosuch": (UsageError, "'{path}' does not exist in {target}.",
               "Check with 'distrodebug exec {target} -- ls -la {parent}'."),
    "nodir": (UsageError, "The directory '{where}' does not exist in {target}.",
              "Create it first, or copy into an existing directory."),
    "denied": (DistrodebugError, "The target's user may not write to '{where}' in {target}.",
               "Copy into a directory it owns (its home, /tmp or a volume)."),
    "readonly": (DistrodebugError, "'{where}' in {target} is on a read-only filesystem.",
                 "Copy into a writable volume mounted in the target."),
    "symlink": (DistrodebugError, "'{where}' in {target} is a symlink, which the sidecar (running "
                "as the target's user, without a chroot) will not follow: it could lead out of "
                "the target's root.", "Give the path it points to, or run as root (--user 0)."),
}


def _raise_for(errors: _Errors, code: int, target: Target, path: str) -> None:
    words = errors.lines[0].split(" ", 2) if errors.lines else []
    kind = words[1] if len(words) > 1 else ""
    fields = {"path": path, "where": words[2] if len(words) > 2 else path, "target": target,
              "parent": os.path.dirname(path) or "/"}
    if kind in _REFUSALS:
        cls, message, hint = _REFUSALS[kind]
        raise cls(message.format(**fields), hint.format(**fields))
    if code != 0:
        detail = errors.other.decode("utf-8", "replace").strip().splitlines()
        raise DistrodebugError(f"Copying '{path}' failed in {target}: "
                               f"{detail[-1] if detail else f'exit status {code}'}.", "")


def _request(target: Target, script: str, args: list[str], stdin: bool) -> session.SessionRequest:
    return session.SessionRequest(target=target, command=("sh", "-c", script, "cp", *args),
                                  stdin=stdin, outside_target=True)


def _in_sidecar(request: session.SessionRequest, pid: int) -> session.SessionRequest:
    assert request.command is not None
    return dataclasses.replace(request, command=sidecar.with_target_pid(pid, request.command))


def copy_from(src: Endpoint, dest: Path, runtime: Runtime, settings: Settings, ui: session.UI) -> int:
    """Copy ``src`` out of its target into ``dest``; returns the number of entries written."""
    assert src.target is not None
    info = runtime.inspect(src.target)
    if info.status != "running":
        with runtime.read_archive(info, src.path) as stream:
            return _extract(stream, src.path, dest)
    errors = _Errors()
    request = _in_sidecar(_request(src.target, _FROM_SCRIPT, [src.path], False), info.pid)
    count, code, _, _ = capture.capture(
        request, runtime, settings, ui, lambda out, _plan: _extract(out, src.path, dest), errors)
    _raise_for(errors, code, src.target, src.path)
    if count == 0:
        raise UsageError(f"Nothing was copied from '{src.path}'.", "")
    return count


def _extract(stream: BinaryIO, remote: str, dest: Path) -> int:
    """Extract a tar whose top entry is basename(remote), docker-cp style, refusing escapes."""
    base = remote.rstrip("/").rsplit("/", 1)[-1] or "root"
    into, rename = (dest, None) if dest.is_dir() else (dest.parent, dest.name)
    if not into.is_dir():
        raise UsageError(f"The local directory '{into}' does not exist.", "Create it first.")
    count, refused = 0, []
    try:
        tar = tarfile.open(fileobj=stream, mode="r|")
    except tarfile.ReadError:
        return 0  # nothing came: the script's stderr says why
    with tar:
        for member in tar:
            if rename and (member.name == base or member.name.startswith(base + "/")):
                member.name = rename + member.name[len(base):]
            # The "data" filter refuses absolute names, '..', links leading out and device
            # files, and drops setuid bits: the target may be hostile.
            try:
                tar.extract(member, into, filter="data")
            except tarfile.FilterError as exc:
                refused.append(f"{member.name}: {exc}")
                continue
            count += 1
    if refused:
        raise DistrodebugError(
            f"{len(refused)} entr{'y was' if len(refused) == 1 else 'ies were'} not copied, to keep "
            f"them from pointing outside {into}: {'; '.join(refused[:5])}.",
            f"{count} other entries were copied. Copy what a link points at by its path instead.",
        )
    return count


def _tar_of(local: Path, arcname: str | None = None) -> BinaryIO:
    """A pipe that yields a tar of ``local`` (named ``arcname``) while a thread writes it."""
    read_fd, write_fd = os.pipe()

    def write() -> None:
        with os.fdopen(write_fd, "wb") as sink, tarfile.open(fileobj=sink, mode="w|",
                                                              format=tarfile.PAX_FORMAT) as tar:
            tar.add(str(local), arcname=arcname or local.name)

    threading.Thread(target=write, daemon=True).start()
    return os.fdopen(read_fd, "rb")


def copy_to(local: Path, dest: Endpoint, runtime: Runtime, settings: Settings, ui: session.UI,
            uid: str | None = None) -> None:
    """Copy a local file or directory into the target at ``dest``."""
    assert dest.target is not None
    if not local.exists() and not local.is_symlink():
        raise UsageError(f"'{local}' does not exist.", "")
    info = runtime.inspect(dest.target)
    if info.status != "running":
        # A stopped container: the engine's archive API, docker-cp style naming.
        parent, _, name = dest.path.rstrip("/").rpartition("/")
        if runtime.is_dir(info, dest.path):
            runtime.write_archive(info, dest.path, _tar_of(local))
        else:
            runtime.write_archive(info, parent or "/", _tar_of(local, name))
        return
    user = (uid if uid is not None else info.user.split(":", 1)[0]) or "0"
    gid = info.user.split(":", 1)[1] if ":" in info.user else user
    if not user.isdigit():
        user, gid = _numeric_user(dest.target, info, runtime, settings, ui, user)
    errors = _Errors()
    request = _in_sidecar(_request(dest.target, _TO_SCRIPT, [dest.path, local.name, user, gid], True),
                          info.pid)
    feed = _tar_of(local)
    _, code, _, _ = capture.capture(request, runtime, settings, ui, _drain, errors, stdin_from=feed)
    _raise_for(errors, code, dest.target, dest.path)


def _drain(stream: BinaryIO, _plan: session.Plan) -> None:
    while stream.read(65536):
        pass


def _numeric_user(target: Target, info: TargetInfo, runtime: Runtime, settings: Settings,
                  ui: session.UI, name: str) -> tuple[str, str]:
    """Look a user name up in the target's own /etc/passwd (read through the sidecar)."""
    def read(stream: BinaryIO, _plan: session.Plan) -> bytes:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                handle = tar.extractfile(member)
                if handle is not None:
                    return handle.read(1 << 20)
        return b""

    request = _in_sidecar(_request(target, _FROM_SCRIPT, ["/etc/passwd"], False), info.pid)
    text, _, _, _ = capture.capture(request, runtime, settings, ui, read, _Errors())
    for line in text.decode("utf-8", "replace").splitlines():
        fields = line.split(":")
        if len(fields) > 3 and fields[0] == name:
            return fields[2], fields[3]
    raise UsageError(f"The target's user '{name}' is not in its /etc/passwd.",
                     "Pass the numeric uid with --user UID.")
