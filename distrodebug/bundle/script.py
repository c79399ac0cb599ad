"""Shell scripts the dump runs in the busybox sidecar, generated from the dump options.

Both scripts are POSIX/busybox-ash, run as ``sh -c SCRIPT`` in a sidecar that shares the target's
PID and network namespaces. Environment: ``DD_PID`` (the target's main process as the sidecar
sees it; default 1). Nothing is ever written to the target.

:func:`fs_stream_script` writes the target's filesystem as tar on **stdout** and nothing else:
concatenated archives from busybox tar (one per xargs batch), each preceded by a marker member
``<nonce>.distrodebug-batch`` and the whole closed by ``<nonce>.distrodebug-end`` (see
:mod:`distrodebug.bundle.tar.reader` for why). **stderr** carries one line per entry it left out, tab
separated: ``DDSKIP<TAB>path<TAB>reason[<TAB>kind<TAB>size]``, or ``DDSKIPX`` with the path in
hex where the script chose the entry itself (names may hold newlines) (parse them with
:func:`parse_skip_lines`); any other stderr line is a diagnostic. Exit status 0
unless the script itself could not run. How it walks the target:

- it chroots into ``/proc/$DD_PID/root`` (CAP_SYS_CHROOT, Docker's default) and runs busybox
  from the sidecar through ``/proc/<its own pid>/root``, so an absolute symlink, or a directory
  swapped for one mid-walk, resolves inside the target; without chroot it walks from the same
  directory and says ``DDINFO<TAB>nochroot`` on stderr. Target binaries are never run;
- ``find`` lists entries without following symlinks; ``tar --no-recursion`` archives each as it
  is (a FIFO or device node is a header only, never opened);
- pruned: ``/proc``, ``/sys`` and every proc, sysfs, devpts, mqueue, cgroup, devtmpfs and other
  kernel filesystem mount in ``/proc/$DD_PID/mountinfo``; ``/dev`` itself is kept because its
  ``shm`` is where intruders stash files. ``--no-volumes`` also prunes every other mount point
  except ``/``, ``/dev``, ``/dev/shm`` and Docker's ``/etc/hosts``, ``/etc/hostname`` and
  ``/etc/resolv.conf``;
- regular files larger than the maximum size and sockets are reported on stderr, never read.
"""

from __future__ import annotations

import shlex
import tarfile
from collections.abc import Iterable, Sequence

from distrodebug.bundle.options import (
    DumpOptions,
    SkippedEntry,
    clean_paths,
    compile_excludes,
    in_paths,
)
from distrodebug.bundle.tar.reader import MARK_SUFFIX_BATCH, MARK_SUFFIX_END

#: Kernel filesystems whose contents are the kernel's, not the container's.
VIRTUAL_FSTYPES = (
    "proc", "sysfs", "devpts", "mqueue", "cgroup", "cgroup2", "devtmpfs", "securityfs",
    "debugfs", "tracefs", "pstore", "bpf", "configfs", "fusectl", "binfmt_misc", "hugetlbfs",
    "autofs", "nsfs", "efivarfs", "selinuxfs",
)  # fmt: skip
#: Mount points Docker sets up itself: not the user's volumes.
ENGINE_MOUNTS = ("/", "/dev", "/dev/shm", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf")
#: Past this size the path list no longer goes into the script (one argv string is limited to
#: 128 KiB); the script then streams everything and the writer filters.
MAX_EMBEDDED_PATHS = 64 * 1024


def marker_parts(suffix: str) -> tuple[str, str, int]:
    """printf formats around the nonce and checksum, and the checksum without the nonce."""
    info = tarfile.TarInfo("N" * 32 + suffix)
    info.mode, info.mtime, info.type = 0o644, 0, tarfile.REGTYPE
    block = bytearray(info.tobuf(tarfile.USTAR_FORMAT, "ascii", "strict"))
    block[148:156] = b" " * 8
    base = sum(block) - 32 * ord("N")
    return _printf_escape(bytes(block[32:148])), _printf_escape(bytes(block[156:])), base


def _printf_escape(data: bytes) -> str:
    out = []
    for byte in data:
        char = chr(byte)
        out.append(char if char.isalnum() or char in "._-" else f"\\{byte:03o}")
    return "".join(out)


def _mark_function(name: str, suffix: str) -> str:
    middle, tail, base = marker_parts(suffix)
    return (
        f"{name}() {{ printf '%s{middle}' \"$DDNONCE\"; "
        f"printf '%06o\\000 ' $(( {base} + DDNSUM )); printf '{tail}'; }}"
    )


_AWK_MOUNTS = r"""
function unescape(s,   out, i, c, d) {
  out = ""
  for (i = 1; i <= length(s); i++) {
    c = substr(s, i, 1)
    d = substr(s, i + 1, 3)
    if (c == "\\" && d ~ /^[0-7][0-7][0-7]$/) {
      out = out sprintf("%c", substr(d, 1, 1) * 64 + substr(d, 2, 1) * 8 + substr(d, 3, 1))
      i += 3
    } else out = out c
  }
  return out
}
{
  for (i = 7; i <= NF; i++) if ($i == "-") break
  mp = unescape($5)
  if (mp == "/" || mp ~ /\n/) next
  if ((($(i + 1)) in virt) || (novol && !(mp in keep))) print "." mp
}
"""
# Names go out hex-encoded (DDSKIPX): a name may hold a newline or a tab.
_HEX = '"$DDBB" od -An -tx1 | "$DDBB" tr -d " \\n"'
_SOCKETS = ('for f; do h=$(printf %s "$f" | ' + _HEX + ');'
            ' printf "DDSKIPX\\t%s\\tsocket\\tsocket\\n" "$h"; done >&2')
_BIG = ('for f; do h=$(printf %s "$f" | ' + _HEX + '); s=$("$DDBB" stat -c %s "$f");'
        ' printf "DDSKIPX\\t%s\\tlarger than the maximum file size\\tfile\\t%s\\n" "$h" "$s";'
        ' done >&2')
_SED_TAR = (
    # "." stands for the quotes in "can't open 'x'", which would need four levels of escaping.
    "s/^tar: can.t open .\\(.*\\).: \\(.*\\)$/DDSKIP\t\\1\t\\2/;"
    "s/^tar: \\(.*\\): socket ignored$/DDSKIP\t\\1\tsocket\tsocket/;"
    "s/^tar: \\(.*\\): No such file or directory$/DDSKIP\t\\1\tvanished before it was read/"
)
_SED_FIND = "s/^find: \\(.*\\): \\([^:]*\\)$/DDSKIP\t\\1\t\\2/"


# busybox must be called by a name ending in "busybox" to act as a multi-call binary.
_FIND_BUSYBOX = [
    'BB=""',
    'for c in "$(command -v busybox)" /bin/busybox /usr/bin/busybox /busybox; do',
    '  case "$c" in /*) if [ -x "$c" ]; then BB=$c; break; fi ;; esac',
    "done",
    'if [ -z "$BB" ]; then printf "DDERR\\tno busybox binary in the sidecar\\n" >&2; exit 127; fi',
]


def fs_stream_script(options: DumpOptions, changed_paths: Sequence[str] = ()) -> str:
    """The busybox script that streams the target's filesystem as tar; see the module doc."""
    q = shlex.quote
    find_args = _start_points(options, changed_paths)
    if options.changed_only and find_args != ["."]:
        find_args += ["-maxdepth", "0"]
    find_args += ["(", "-path", "./proc", "-o", "-path", "./sys"]
    for anchored, pattern in compile_excludes(options.excludes):
        find_args += [
            "-o",
            "-path" if anchored else "-name",
            "./" + pattern if anchored else pattern,
        ]
    marks = "; ".join(
        [
            _mark_function("batch_mark", MARK_SUFFIX_BATCH),
            _mark_function("end_mark", MARK_SUFFIX_END),
        ]
    )
    # One xargs batch. busybox tar dies with "short read" when a file shrinks under it, losing
    # the rest of the batch: then every file of the batch goes again, one tar each (the writer
    # keeps the first copy of a path, so the ones already sent are not doubled in the bundle).
    tar_one = (
        'e=$("$DDBB" tar c -f - --no-recursion -- "$@" 2>&1 >&4 4>&-);'
        ' if [ -n "$e" ]; then printf "%s\\n" "$e" | "$DDBB" sed ' + q(_SED_TAR) + " >&2; fi"
    )
    batch = (
        'eval "$DDMARKS"; exec 4>&1; tar_one() { ' + tar_one + '; }; batch_mark; tar_one "$@";'
        ' case "$e" in *"short read"*) for f; do batch_mark; tar_one "$f"; done ;; esac'
    )
    inner = "\n".join(
        [
            "PATH=/nonexistent",  # never run a program from the target by accident
            'eval "$DDMARKS"',
            "batch_mark",
            "exec 3>&1",
            '{ "$DDBB" find "$@" -exec "$DDBB" sh -c ' + q(_BIG) + " sh {} + -o -type s -exec"
            ' "$DDBB" sh -c ' + q(_SOCKETS) + ' sh {} + -o -print0 | "$DDBB" xargs -0 -r'
            ' "$DDBB" sh -c ' + q(batch) + ' sh >&3; } 2>&1 | "$DDBB" sed ' + q(_SED_FIND) + " >&2",
            "end_mark",
        ]
    )
    virt = " ".join(f'virt["{t}"];' for t in VIRTUAL_FSTYPES)
    keep = " ".join(f'keep["{m}"];' for m in ENGINE_MOUNTS)
    awk = f"BEGIN {{ {virt} {keep} }}" + _AWK_MOUNTS
    lines = [
        "PID=${DD_PID:-1}",
        "SELF=$$",
        *_FIND_BUSYBOX,
        # The nonce only ever lives in this shell and its children's environment (readable
        # only with ptrace rights over them), never in a command line the target could read.
        'DDNONCE=$("$BB" head -c 16 /dev/urandom | "$BB" od -An -tx1 | "$BB" tr -d " \\n")',
        'n=$DDNONCE; DDNSUM=0; while [ -n "$n" ]; do c=${n%"${n#?}"};'
        ' DDNSUM=$((DDNSUM + $(printf %d "\'$c"))); n=${n#?}; done',
        f"DDMARKS={q(marks)}",
        "export DDNONCE DDNSUM DDMARKS",
        f'PRUNE=$("$BB" awk -v novol={1 if options.no_volumes else 0} {q(awk)} "/proc/$PID/mountinfo")',
        f"set -- {' '.join(q(a) for a in find_args)}",
        "set -f; IFS='\n'",
        'for p in $PRUNE; do set -- "$@" -o -path "$p"; done',
        "unset IFS; set +f",
        f"set -- \"$@\" ')' -prune -o -type f -size +{int(options.max_file_size)}c",
        f"INNER={q(inner)}",
        'if "$BB" chroot "/proc/$PID/root" "/proc/$SELF/root$BB" true 2>/dev/null; then',
        '  export DDBB="/proc/$SELF/root$BB"',
        '  "$BB" chroot "/proc/$PID/root" "$DDBB" sh -c "cd / && $INNER" sh "$@"',
        "else",
        "  printf 'DDINFO\\tnochroot\\n' >&2",
        '  export DDBB="$BB"',
        '  cd "/proc/$PID/root" && "$BB" sh -c "$INNER" sh "$@"',
        "fi",
        "rc=$?",  # keeps this shell alive after the chroot: busybox ash execs a last command
        "exit $rc",
    ]
    return "\n".join(lines) + "\n"


def _start_points(options: DumpOptions, changed_paths: Sequence[str]) -> list[str]:
    paths = clean_paths(options.paths)
    if options.changed_only and changed_paths:
        wanted = [p for p in clean_paths(tuple(changed_paths)) if in_paths(p, paths)]
        if wanted and sum(len(p) + 4 for p in wanted) <= MAX_EMBEDDED_PATHS:
            return ["./" + p for p in wanted]
        return ["./" + p for p in paths] or ["."]
    if paths and sum(len(p) + 4 for p in paths) <= MAX_EMBEDDED_PATHS:
        return ["./" + p for p in paths]
    return ["."]


def parse_skip_lines(lines: Iterable[str]) -> list[SkippedEntry]:
    """``DDSKIP<TAB>path<TAB>reason[<TAB>kind<TAB>size]`` lines from the sidecar's stderr."""
    out: list[SkippedEntry] = []
    for line in lines:
        parts = line.rstrip("\n").split("\t")
        if len(parts) < 3 or parts[0] not in ("DDSKIP", "DDSKIPX") or not parts[1]:
            continue
        if parts[0] == "DDSKIPX":
            try:
                parts[1] = bytes.fromhex(parts[1]).decode("utf-8", "surrogateescape")
            except ValueError:
                continue
        kind = parts[3] if len(parts) > 3 and parts[3] else None
        size = int(parts[4]) if len(parts) > 4 and parts[4].isdigit() else None
        out.append(SkippedEntry(parts[1], parts[2], kind, size))
    return out
