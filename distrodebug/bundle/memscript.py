"""The busybox script that streams the target's process memory, and the reader of its frames.

:func:`memory_script` runs as ``sh -c SCRIPT`` in the dump's sidecar, which shares the target's
PID namespace. For each process it is given (the dump's process list, which already leaves out
the sidecar's own) it reads ``/proc/PID/maps`` and streams every readable mapping's bytes from
``/proc/PID/mem`` with busybox ``dd`` (4 KiB blocks: ``skip`` counts blocks, so offsets up to
2^63 work; ``conv=noerror,sync`` skips an unreadable block and writes zeros in its place), with
zeros behind it, through ``dd count=N iflag=fullblock``, so **exactly** the announced length
always follows a header, whatever the kernel or a dying process does (``head -c`` would do the
same, but busybox's copies a byte at a time: 60 MB/s against 250). Nothing is written anywhere but stdout.

stdout, one frame after another; every header line carries the nonce, which the target cannot
read (it lives in this shell's environment and output only), and every value the target controls
is base64; bytes are framed by length, never by a delimiter, so a target cannot forge a frame::

    DDMEM 1 <nonce> <uname -m>
    P <nonce> <pid> <status> <stat> <cmdline> <auxv> <maps> <exe's first 64 bytes> <environ>
      <tids,...>
    R <nonce> <pid> <index> <4 KiB blocks>\\n<exactly blocks*4096 bytes>
    E <nonce> <pid> <index> <blocks read whole> <first error message>
    S <nonce> <pid> <index> <reason>            (a mapping left out)
    Q <nonce> <pid>                            (the process is complete)
    X <nonce> <pid> <reason> <message>          (a process left out)
    END <nonce>

``index`` is the mapping's line number in the maps sent with P. Reasons: ``noread`` (no ``r``
permission: guard pages), ``kernel`` ([vvar], [vsyscall]: the kernel's, not the process's),
``device`` (a device mapping: reading it could touch hardware), ``limit`` (over what is left
of the size limit); for processes ``gone``, ``refused`` (no ptrace access to its memory),
``ours`` (the sidecar's own), ``other-container`` (not in the cgroup of the target's main
process ``DD_PID``: another container's, a debugger's).
"""

from __future__ import annotations

import base64
import binascii
import shlex
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

from distrodebug.errors import BundleError

BLOCK = 4096
#: The longest header line read: a P line carries the whole maps file (base64).
MAX_LINE = 64 << 20

_SCRIPT = r"""
BB=""
for c in "$(command -v busybox)" /bin/busybox /usr/bin/busybox /busybox; do
  case "$c" in /*) if [ -x "$c" ]; then BB=$c; break; fi ;; esac
done
if [ -z "$BB" ]; then printf "DDERR\tno busybox binary in the sidecar\n" >&2; exit 127; fi
PATH=/nonexistent
b64() { "$BB" base64 -w0 "$@" 2>/dev/null; }
N=$("$BB" head -c 16 /dev/urandom | "$BB" od -An -tx1 | "$BB" tr -d " \n")
read -r SELF _ < /proc/self/stat
top() {  # the first process of the tree $1 is in, as far as this namespace sees
  t=$1
  while :; do
    pp=$("$BB" awk '/^PPid:/ { print $2 }' "/proc/$t/status" 2>/dev/null)
    case "$pp" in ""|0) break ;; esac
    t=$pp
  done
  echo "$t"
}
OURS=$(top "$SELF")
# The target container's processes share its main process's cgroup; ours, other debuggers'
# (earlier jobs in Kubernetes' ephemeral containers linger) and other containers' do not.
CG=$("$BB" cat "/proc/${DD_PID:-1}/cgroup" 2>/dev/null)
LEFT=$LIMIT
exec 4>&1
echo "DDMEM 1 $N $("$BB" uname -m)"
for p in $PIDS; do
  if [ ! -d "/proc/$p" ]; then echo "X $N $p gone -"; continue; fi
  if [ "$(top "$p")" = "$OURS" ]; then echo "X $N $p ours -"; continue; fi
  if [ -n "$CG" ] && [ "$("$BB" cat "/proc/$p/cgroup" 2>/dev/null)" != "$CG" ]; then
    echo "X $N $p other-container -"; continue
  fi
  if ! e=$("$BB" dd if="/proc/$p/mem" bs=1 count=0 2>&1 >/dev/null); then
    echo "X $N $p refused $(printf %s "$e" | b64)-"; continue
  fi
  maps=$(b64 "/proc/$p/maps")
  if [ -z "$maps" ]; then echo "X $N $p gone -"; continue; fi
  tids=""
  for t in "/proc/$p/task/"[0-9]*; do tids="$tids${tids:+,}${t##*/}"; done
  echo "P $N $p $(b64 "/proc/$p/status")- $(b64 "/proc/$p/stat")- $(b64 "/proc/$p/cmdline")-" \
    "$(b64 "/proc/$p/auxv")- $maps $("$BB" head -c 64 "/proc/$p/exe" 2>/dev/null | b64)-" \
    "$(b64 "/proc/$p/environ")- ${tids:--}"
  i=0
  text=$(printf %s "$maps" | "$BB" base64 -d)
  # A here-document, not a pipe: the loop must run in this shell, which keeps LEFT.
  while read -r range perms off dev inode path; do
    s=${range%-*}; e=${range#*-}
    case "$perms" in r*) ;; *) echo "S $N $p $i noread"; i=$((i + 1)); continue ;; esac
    case "$path" in
      "[vvar]"|"[vvar_vclock]"|"[vsyscall]") echo "S $N $p $i kernel"; i=$((i + 1)); continue ;;
      /dev/zero*|/dev/shm/*) ;;
      /dev/*) echo "S $N $p $i device"; i=$((i + 1)); continue ;;
    esac
    n=$(( (0x$e - 0x$s) / 4096 ))
    if [ $((n * 4096)) -gt "$LEFT" ]; then echo "S $N $p $i limit"; i=$((i + 1)); continue; fi
    LEFT=$((LEFT - n * 4096))
    echo "R $N $p $i $n"
    r=$( { { "$BB" dd if="/proc/$p/mem" bs=4096 skip=$((0x$s / 4096)) count=$n conv=noerror,sync \
             2>&3 3>&-; "$BB" dd if=/dev/zero bs=4096 count=$n 2>/dev/null 3>&-; } \
           | "$BB" dd ibs=4096 obs=1048576 count=$n iflag=fullblock 2>/dev/null >&4 4>&-; } 3>&1 \
         | "$BB" awk '/records in/ { split($1, a, "+"); r = a[1] } /^dd: / && m == "" { m = $0 }
                      END { printf "%s %s", (r == "" ? 0 : r), m }')
    m=${r#* }
    echo "E $N $p $i ${r%% *} $(printf %s "$m" | b64)-"
    i=$((i + 1))
  done <<EOF
$text
EOF
  echo "Q $N $p"
done
echo "END $N"
"""


def memory_script(pids: Sequence[int], limit: int) -> str:
    """The script for these processes and this many bytes at most; see the module doc."""
    listed = " ".join(str(int(pid)) for pid in pids)
    return f"PIDS={shlex.quote(listed)}\nLIMIT={int(limit)}\n" + _SCRIPT


@dataclass
class ProcessHead:
    """A P frame: what /proc said about one process before its memory."""

    pid: int
    status: bytes
    stat: bytes
    cmdline: bytes
    auxv: bytes
    maps: bytes
    exe_head: bytes
    environ: bytes  # read only to mask its secret values in the core; never stored
    tids: tuple[int, ...]


@dataclass
class Region:
    """An R frame's header: ``blocks`` * 4096 bytes follow, to be read with :meth:`Frames.read`."""

    pid: int
    index: int
    blocks: int


@dataclass
class RegionEnd:
    """An E frame: how many blocks were read whole (the rest are zeros) and the first error."""

    pid: int
    index: int
    whole: int
    error: str


@dataclass
class Skip:
    """An S frame (a mapping left out) or, with ``index`` None, an X frame (a process)."""

    pid: int
    index: int | None
    reason: str
    message: str = ""


@dataclass
class ProcessEnd:
    pid: int


@dataclass
class End:
    pass


Frame = ProcessHead | Region | RegionEnd | Skip | ProcessEnd | End


def _b64(text: bytes) -> bytes:
    text = text.removesuffix(b"-")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _damaged("a value is not base64") from None


def _damaged(what: str) -> BundleError:
    return BundleError(
        f"The memory stream from the sidecar is damaged: {what}.",
        "The sidecar or the engine went away during the dump; run it again.",
    )


@dataclass
class Frames:
    """Reads the script's stdout frame by frame; region bytes with :meth:`read`."""

    stream: BinaryIO
    nonce: bytes = b""
    machine: str = ""  # the node's, from uname -m
    _left: int = 0
    skipped_regions: list[Skip] = field(default_factory=list)

    def _line(self) -> list[bytes]:
        line = self.stream.readline(MAX_LINE)
        if not line:
            raise _damaged("it ended before the sidecar said it was complete")
        if not line.endswith(b"\n"):
            raise _damaged("a header line is too long or cut")
        return line[:-1].split(b" ")

    def frames(self) -> Iterator[Frame]:
        """Each frame in order; region bytes must be read (or skipped) before the next."""
        first = self._line()
        if len(first) != 4 or first[:2] != [b"DDMEM", b"1"] or len(first[2]) != 32:
            raise _damaged("it does not start with the expected header")
        self.nonce, self.machine = first[2], first[3].decode("ascii", "replace")
        while True:
            if self._left:
                self.read_all(lambda _data: None)
            parts = self._line()
            if len(parts) < 2 or parts[1] != self.nonce:
                raise _damaged("a frame does not carry the stream's nonce")
            tag, args = parts[0], parts[2:]
            try:
                frame = self._frame(tag, args)
            except ValueError:
                raise _damaged(f"a {tag.decode('ascii', 'replace')!r} frame is malformed") from None
            if isinstance(frame, Region):
                self._left = frame.blocks * BLOCK
            yield frame
            if isinstance(frame, End):
                return

    @staticmethod
    def _frame(tag: bytes, args: list[bytes]) -> Frame:
        if tag == b"P" and len(args) == 9:
            tids = () if args[8] == b"-" else tuple(int(t) for t in args[8].split(b","))
            status, stat, cmdline, auxv, maps, exe_head, environ = (_b64(a) for a in args[1:8])
            return ProcessHead(int(args[0]), status, stat, cmdline, auxv, maps, exe_head, environ,
                               tids)
        if tag == b"R" and len(args) == 3:
            return Region(int(args[0]), int(args[1]), int(args[2]))
        if tag == b"E" and len(args) == 4:
            message = _b64(args[3]).decode("utf-8", "replace").strip()
            return RegionEnd(int(args[0]), int(args[1]), int(args[2]), message)
        if tag == b"S" and len(args) == 3:
            return Skip(int(args[0]), int(args[1]), args[2].decode("ascii"))
        if tag == b"X" and len(args) == 3:
            message = _b64(args[2]).decode("utf-8", "replace").strip()
            return Skip(int(args[0]), None, args[1].decode("ascii"), message)
        if tag == b"Q" and len(args) == 1:
            return ProcessEnd(int(args[0]))
        if tag == b"END" and not args:
            return End()
        raise ValueError(tag)

    def read_all(self, sink: Callable[[bytes], object]) -> None:
        """Pass the current region's bytes to ``sink`` in pieces of at most 1 MiB."""
        while self._left:
            data = self.stream.read(min(self._left, 1 << 20))
            if not data:
                raise _damaged("it ended in the middle of a memory region")
            self._left -= len(data)
            sink(data)
