"""`cp`: copy files out of and into targets that have no tar of their own.

The tar runs in the debug sidecar. Reads run as root inside a chroot into the target's root (so
a symlink in the target can never lead out of it), from the sidecar's own files at
/proc/<pid>/root. Writes into a non-root target run as the target's own user on
/proc/<pid>/root, so the kernel checks every path with that user's rights and a symlink the
target planted cannot lead a root write anywhere; a root target is written as root in the
chroot. Naming follows docker cp: an existing directory is merged into (nothing in it is
removed), 'dir/.' copies the contents, a trailing '/' names a directory. Stopped Docker
containers are copied through the engine's archive API instead.
"""

from __future__ import annotations

import os
import tarfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from distrodebug import capture, session, sidecar
from distrodebug.errors import DistrodebugError, UsageError
from distrodebug.model import TargetInfo
from distrodebug.privileges import Job
from distrodebug.runtimes.base import Runtime
from distrodebug.settings import Settings
from distrodebug.target import Target, parse_target

# Run by both scripts with $1 = the sidecar's files ("" when they are at /), $2 = the prefix of
# the target's root ("" in a chroot into it; /proc/<pid>/root when the script runs as the
# target's user, which cannot chroot). Paths arrive octal-escaped (printf %b), so names that are
# not UTF-8 survive the engine's JSON API.
_COMMON = r"""
PATH=${1:-}/bin; ROOT=$2; shift 2
fail() { echo "DDERR $1 $2" >&2; exit 2; }
unesc() { printf '%b' "$1"; }
# The path with every symlink resolved inside the target's root, as the target would see it;
# never followed out of it (an absolute link starts again at the target's root).
resolve() {
  in=$1 out= n=0
  while [ -n "$in" ]; do
    in=${in#/}; c=${in%%/*}
    case "$in" in */*) in=${in#*/} ;; *) in= ;; esac
    case "$c" in
      ''|.) continue ;;
      ..) out=${out%/*}; continue ;;
    esac
    if [ -L "$ROOT$out/$c" ]; then
      n=$((n + 1)); [ "$n" -le 40 ] || fail loop "$1"
      l=$(readlink "$ROOT$out/$c"; echo .); l=${l%??}
      case "$l" in /*) out= ;; esac
      in=$l/$in
    else
      out=$out/$c
    fi
  done
  echo "${out:-/}."
}
"""

_FROM_INNER = _COMMON + r"""
src=$(unesc "$1")
# The parent's links are followed inside the root; the last component is copied as it is (a
# symlink stays a symlink, as with docker cp).
case "$src" in
  /) ;;
  *) dir=$(resolve "${src%/*}"); dir=${dir%.}; src=${dir%/}/${src##*/} ;;
esac
[ -e "$ROOT$src" ] || [ -L "$ROOT$src" ] || fail nosuch "$1"
if [ "$src" = / ]; then
  # The whole root: without the kernel's /proc and /sys, and /dev (device nodes are not copied).
  cd "$ROOT/" && find . -mindepth 1 -maxdepth 1 ! -name proc ! -name sys ! -name dev -print0 \
    | xargs -0 tar -c -f -
else
  cd "$ROOT${src%/*}/" && tar -c -f - "${src##*/}"
fi
"""

# $1 dest, $2 the tar's top name, $3 contents (1: merge into dest itself), $4 dest had a trailing
# slash, $5 file|dir. Existing directories are merged into, docker-cp style; nothing is removed.
_TO_INNER = _COMMON + r"""
want=$(unesc "$1"); top=$(unesc "$2"); contents=$3; slash=$4; kind=$5
dest=$(resolve "$want"); dest=${dest%.}
if [ -d "$ROOT$dest" ]; then
  if [ "$contents" = 1 ]; then final=$dest; else final=${dest%/}/$top; fi
else
  [ "$slash" = 1 ] && [ "$kind" = file ] && fail nodir "$want"
  parent=${dest%/*}; [ -n "$parent" ] || parent=/
  [ -d "$ROOT$parent" ] || fail nodir "${want%/*}"
  [ -e "$ROOT$dest" ] && [ "$kind" = dir ] && fail notdir "$want"
  final=$dest
fi
parent=${final%/*}; [ -n "$parent" ] || parent=/
tmp=$(mktemp -d "$ROOT${parent%/}/.distrodebug-cp.XXXXXX" 2>&1) || {
  case "$tmp" in *Read-only*) fail readonly "$parent" ;; *) fail denied "$parent" ;; esac; }
trap 'rm -rf "$tmp"' EXIT
echo DDREADY >&2  # checks passed: now send the tar (capture.StdinGate)
tar -x -o -f - -C "$tmp" || exit 1
# Merge $1 into the existing directory $2: files replace files, directories are merged into,
# a symlink in the target is replaced rather than followed.
merge() {
  for e in "$1"/* "$1"/.[!.]* "$1"/..?*; do
    [ -e "$e" ] || [ -L "$e" ] || continue
    d=$2/${e##*/}
    if [ -d "$d" ] && [ ! -L "$d" ]; then
      if [ -d "$e" ] && [ ! -L "$e" ]; then merge "$e" "$d" || return 1
      else echo "DDERR isdir ${d#"$ROOT"}" >&2; return 2; fi
    else
      mv -f -T "$e" "$d" || return 1
    fi
  done
}
if [ -d "$ROOT$final" ] && [ ! -L "$ROOT$final" ]; then
  [ -d "$tmp/$top" ] || fail isdir "$final"
  merge "$tmp/$top" "$ROOT$final"
else
  mv -f -T "$tmp/$top" "$ROOT$final"
fi
"""

# Reads run as root in a chroot into the target. Writes run as the target's own user (read from
# /proc/<pid>/status, or --user), on /proc/<pid>/root, so the kernel checks every path with that
# user's rights: a symlink the target planted can only lead where the target could write anyway.
# A root target is written as root in a chroot, where no link leads out of its root.
_OUTER = r"""
read -r P _ < /proc/self/stat
R=/proc/$DD_PID/root
T=/proc/$P/root
if [ "$DD_WRITE" = 1 ] && [ "$(id -u)" != 0 ]; then
  # Already a user (a restricted Kubernetes debugger): write as ourselves, the kernel checks.
  sh -c "$DD_INNER_CP" sh "" "$R" "$@"
  exit $?
fi
if [ "$DD_WRITE" = 1 ]; then
  u=$DD_AS
  [ -n "$u" ] || u=$(awk '/^Uid:/ {u = $2} /^Gid:/ {g = $2} END {print u ":" g}' /proc/$DD_PID/status)
  case "$u" in
    0|0:*) ;;
    *) start-stop-daemon -S -c "$u" -n distrodebug-cp -x /bin/sh -- -c "$DD_INNER_CP" sh "" "$R" "$@"
       exit $? ;;
  esac
fi
if chroot "$R" "$T/bin/true" 2>/dev/null; then
  chroot "$R" "$T/bin/sh" -c "$DD_INNER_CP" sh "$T" "" "$@"
else
  sh -c "$DD_INNER_CP" sh "" "$R" "$@"
fi
rc=$?
exit $rc
"""


def _with_inner(inner: str) -> str:
    """The outer script with the inner one in a quoted here-document (no quoting to escape)."""
    return f"DD_INNER_CP=$(cat <<'DDEND'\n{inner}\nDDEND\n)\n{_OUTER}"


def escape(path: str) -> str:
    """A path as printf %b reads it back: ASCII, with every other byte as an octal escape."""
    out = []
    for byte in os.fsencode(path):
        char = chr(byte)
        out.append(char if 32 <= byte < 127 and char != "\\" else f"\\0{byte:03o}")
    return "".join(out)


_FROM_SCRIPT = _with_inner(_FROM_INNER)
_TO_SCRIPT = _with_inner(_TO_INNER)


@dataclass(frozen=True)
class Endpoint:
    """One side of a copy: a local path, or a path inside a target."""

    path: str
    target: Target | None = None
    #: The path ended with '/': it names a directory (docker cp refuses to make a file of it).
    dir_only: bool = False


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
    return Endpoint(path.rstrip("/") or "/", parse_target(head, container=container, namespace=namespace),
                    dir_only=len(path) > 1 and path.endswith("/"))


class _Errors:
    """Collects DDERR lines from the script's stderr; DDREADY or DDERR decides the input gate."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.other = b""
        self.gate = capture.StdinGate()

    def __call__(self, data: bytes) -> None:
        for line in data.decode("utf-8", "surrogateescape").splitlines():
            if line == "DDREADY":
                self.gate.open()
                continue
            if line.startswith("DDERR"):
                self.lines.append(line)
                self.gate.refuse()
        self.other += data.replace(b"DDREADY\n", b"")


#: The script's DDERR kinds: (error class, message, hint); {path}, {where}, {target} filled in.
_REFUSALS: dict[str, tuple[type[DistrodebugError], str, str]] = {
    "nosuch": (UsageError, "'{path}' does not exist in {target}.",
               "Check with 'distrodebug exec {target} -- ls -la {parent}'."),
    "nodir": (UsageError, "The directory '{where}' does not exist in {target}.",
              "Create it first, or copy into an existing directory."),
    "notdir": (UsageError, "'{where}' in {target} is a file; a directory cannot replace it.",
               "Copy into its parent directory under another name, or remove the file first."),
    "isdir": (UsageError, "'{where}' in {target} is a directory; a file cannot replace it.",
              "Copy into that directory instead (end the destination with '/')."),
    "loop": (DistrodebugError, "'{where}' in {target} leads through too many symlinks.",
             "Give the path the links point to."),
    "denied": (DistrodebugError, "The target's user may not write to '{where}' in {target}.",
               "Copy into a directory it owns (its home, /tmp or a volume)."),
    "readonly": (DistrodebugError, "'{where}' in {target} is on a read-only filesystem.",
                 "Copy into a writable volume mounted in the target."),
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
                               f"{detail[-1] if detail else f'exit status {code}'}.",
                               "Run the copy again with --debug for details.")


def _request(target: Target, pid: int, script: str, args: list[str], job: Job,
             env: tuple[str, ...] = ()) -> session.SessionRequest:
    command = sidecar.with_target_pid(pid, ("env", *env, "sh", "-c", script, "cp", *args))
    return session.SessionRequest(target=target, command=command, stdin=job == "write",
                                  outside_target=True, job=job)


def copy_from(src: Endpoint, dest: Path, runtime: Runtime, settings: Settings, ui: session.UI) -> int:
    """Copy ``src`` out of its target into ``dest``; returns the number of entries written."""
    assert src.target is not None
    info = runtime.inspect(src.target)
    if info.status != "running":
        with runtime.read_archive(info, src.path) as stream:
            return _extract(stream, src.path, dest)
    errors = _Errors()
    request = _request(src.target, info.pid, _FROM_SCRIPT, [escape(src.path)], "read")
    count, code, _, _ = capture.capture(
        request, runtime, settings, ui, lambda out, _plan: _extract(out, src.path, dest), errors)
    _raise_for(errors, code, src.target, src.path)
    if count == 0:
        raise UsageError(f"Nothing was copied from '{src.path}'.", "")
    return count


def _extract(stream: BinaryIO, remote: str, dest: Path) -> int:
    """Extract a tar whose top entry is basename(remote), docker-cp style, refusing escapes.

    Symlinks are copied as symlinks, never followed (as docker cp does); tarfile's "tar" filter
    refuses absolute names, '..' and any member whose path, resolved on disk, would land outside
    the destination, and drops setuid bits; device nodes and FIFOs are never created.
    """
    whole_root = remote.rstrip("/") == ""
    base = remote.rstrip("/").rsplit("/", 1)[-1]
    if whole_root:
        # The root's entries come at the top: into an existing directory, or a new one.
        into, rename = dest, None
        if not dest.is_dir():
            if not dest.parent.is_dir():
                raise UsageError(f"The local directory '{dest.parent}' does not exist.", "Create it first.")
            dest.mkdir()
    else:
        into, rename = (dest, None) if dest.is_dir() else (dest.parent, dest.name)
    if not into.is_dir():
        raise UsageError(f"The local directory '{into}' does not exist.", "Create it first.")
    count, refused, unsafe = 0, [], False
    try:
        tar = tarfile.open(fileobj=stream, mode="r|", errors="surrogateescape")
    except tarfile.ReadError:
        return 0  # nothing came: the script's stderr says why
    with tar:
        for member in tar:
            if rename and (member.name == base or member.name.startswith(base + "/")):
                member.name = rename + member.name[len(base):]
            if member.isdev() or member.isfifo():
                refused.append(f"{member.name}: device nodes and FIFOs are not copied")
                continue
            try:
                tar.extract(member, into, filter="tar")
            except tarfile.FilterError as exc:
                refused.append(f"{member.name}: {exc}")
                unsafe = True
                continue
            count += 1
    if refused:
        raise DistrodebugError(
            f"{len(refused)} entr{'y was' if len(refused) == 1 else 'ies were'} not copied into "
            f"{into}: {'; '.join(refused[:5])}.",
            f"{count} other entries were copied. " + (
                "Copy what a link points at by its path instead." if unsafe else
                "Device nodes and FIFOs have no content to copy; they are listed by 'dump'."),
        )
    return count


def _tar_of(local: Path, arcname: str) -> BinaryIO:
    """A pipe that yields a tar of ``local`` (named ``arcname``) while a thread writes it.

    The thread ends quietly when the reader goes away (the copy failed or was interrupted).
    """
    read_fd, write_fd = os.pipe()

    def write() -> None:
        try:
            with os.fdopen(write_fd, "wb") as sink, tarfile.open(
                    fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                tar.add(str(local), arcname=arcname)
        except OSError:
            pass  # the other end was closed: the copy's own error says why

    threading.Thread(target=write, daemon=True).start()
    return os.fdopen(read_fd, "rb")


#: The tar's top name when a directory's contents are copied ('.', 'dir/.').
_CONTENTS = "distrodebug-contents"


def copy_to(source: str | os.PathLike[str], dest: Endpoint, runtime: Runtime, settings: Settings,
            ui: session.UI, uid: str | None = None) -> None:
    """Copy a local file or directory into the target at ``dest``, docker-cp style.

    ``source`` ending in '/.' (or '.') copies the directory's contents, not the directory.
    """
    assert dest.target is not None
    text = os.fspath(source)
    contents = text == "." or text.endswith("/.")
    local = Path(text)
    if not local.exists() and not local.is_symlink():
        raise UsageError(f"'{local}' does not exist.", "")
    local = Path(os.path.abspath(local)) if contents else local
    kind = "dir" if local.is_dir() and not local.is_symlink() else "file"
    top = _CONTENTS if contents else local.name
    info = runtime.inspect(dest.target)
    if info.status != "running":
        # A stopped container: the engine's archive API, docker-cp style naming.
        parent, _, name = dest.path.rstrip("/").rpartition("/")
        if runtime.is_dir(info, dest.path):
            runtime.write_archive(info, dest.path, _tar_of(local, "." if contents else local.name))
        else:
            runtime.write_archive(info, parent or "/", _tar_of(local, name))
        return
    user = uid or ""
    if user and not user.split(":", 1)[0].isdigit():
        user = ":".join(_numeric_user(dest.target, info, runtime, settings, ui, user))
    elif user and ":" not in user:
        user = f"{user}:{user}"
    errors = _Errors()
    args = [escape(dest.path), escape(top), str(int(contents)), str(int(dest.dir_only)), kind]
    request = _request(dest.target, info.pid, _TO_SCRIPT, args, "write",
                       ("DD_WRITE=1", f"DD_AS={user}"))
    feed = _tar_of(local, top)
    try:
        _, code, _, _ = capture.capture(request, runtime, settings, ui, _drain, errors,
                                        stdin_from=feed, stdin_gate=errors.gate)
    finally:
        feed.close()
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

    request = _request(target, info.pid, _FROM_SCRIPT, ["/etc/passwd"], "read")
    text, _, _, _ = capture.capture(request, runtime, settings, ui, read, _Errors())
    for line in text.decode("utf-8", "replace").splitlines():
        fields = line.split(":")
        if len(fields) > 3 and fields[0] == name:
            return fields[2], fields[3]
    raise UsageError(f"The target's user '{name}' is not in its /etc/passwd.",
                     "Pass the numeric uid with --user UID.")
