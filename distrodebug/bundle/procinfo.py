"""Processes, sockets and mounts of the target, read from /proc by a busybox script in the sidecar.

:data:`COLLECT_SCRIPT` runs as ``sh -c COLLECT_SCRIPT`` in a sidecar sharing the target's PID and
network namespaces (``DD_PID``: the target's main process, default 1). It writes one framed text
on stdout, one record per line, every value the target controls base64-encoded so that no file
name or command line can forge a record::

    DDCOLLECT 1
    SELF <pid of the collecting shell>
    TARGET <pid of the target's main process>
    B <the boot time: btime of /proc/stat, seconds since the epoch>
    C <the wall clock from adjtimex, seconds.microseconds> <the uptime, /proc/uptime>
    P <pid> <base64 status> <base64 cmdline> <base64 stat -c %N of cwd, exe, root, fd/*> <base64 environ>
    T <pid> <base64 /proc/<pid>/stat> <base64 /proc/<pid>/cgroup>
    N <tcp|tcp6|udp|udp6|unix> <base64 /proc/$DD_PID/net/<kind>>
    M <base64 /proc/$DD_PID/mountinfo>
    END

:func:`parse_collect` turns it into plain lists of dicts, leaving out the sidecar's own
processes (the collecting shell, its ancestors up to the sidecar's first process, and its
children, and every process in the collecting shell's own cgroup: the sidecar's, such as a
Kubernetes debugger's reaper, which is no ancestor of a shell started by exec), the idle warm
sidecars of ours that share the namespace (runtimes/docker/warm.py: our idle loop's exact argv,
in a cgroup that is not the target's, and what runs under it), and matches
socket inodes to the processes holding them. A process's start time
(``started``, UTC) is the boot time plus field 22 of its stat in clock ticks; the ticks are
USER_HZ, 100 on every architecture Linux runs containers on (busybox has no getconf to ask).
The kernel gives the boot time (btime) in whole seconds, truncated, which would put every
start up to a second early, before the runtime's own record of it; the wall clock minus the
uptime, read one right after the other, gives it to about 10 ms. busybox's ``adjtimex`` (no
arguments: it only reads) is the one applet that prints the wall clock below a second; without
it btime is used, and each process says how far off its ``started`` may be (``started_error``,
seconds).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from distrodebug.sidecar import IDLE_SCRIPT, SHELL

COLLECT_SCRIPT = r"""
PID=${DD_PID:-1}
BB=""
for c in "$(command -v busybox)" /bin/busybox /usr/bin/busybox /busybox; do
  case "$c" in /*) if [ -x "$c" ]; then BB=$c; break; fi ;; esac
done
if [ -z "$BB" ]; then printf "DDERR\tno busybox binary in the sidecar\n" >&2; exit 127; fi
b64() { "$BB" base64 -w0 "$@" 2>/dev/null; }
echo "DDCOLLECT 1"
echo "SELF $$"
echo "TARGET $PID"
b=$("$BB" grep '^btime ' /proc/stat 2>/dev/null)
echo "B ${b#btime }"
w=$("$BB" adjtimex 2>/dev/null | "$BB" awk '/tv_sec/{s=$2} /tv_usec/{u=$2} END{if(s)printf "%d.%06d",s,u}')
u=$("$BB" cat /proc/uptime 2>/dev/null)
echo "C ${w:--} ${u%% *}"
for d in /proc/[0-9]*; do
  p=${d#/proc/}
  s=$(b64 "$d/status") || continue
  [ -n "$s" ] || continue
  c=$(b64 "$d/cmdline")
  l=$("$BB" stat -c '%N' "$d/cwd" "$d/exe" "$d/root" "$d"/fd/* 2>/dev/null | "$BB" base64 -w0)
  e=$(b64 "$d/environ")
  echo "P $p ${s:--} ${c:--} ${l:--} ${e:--}"
  t=$(b64 "$d/stat")
  g=$(b64 "$d/cgroup")
  echo "T $p ${t:--} ${g:--}"
done
for k in tcp tcp6 udp udp6 unix; do
  t=$(b64 "/proc/$PID/net/$k")
  echo "N $k ${t:--}"
done
m=$(b64 "/proc/$PID/mountinfo")
echo "M ${m:--}"
echo END
"""

TCP_STATES = {
    "01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1",
    "05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK",
    "0A": "LISTEN", "0B": "CLOSING", "0C": "NEW_SYN_RECV",
}  # fmt: skip
UNIX_TYPES = {"0001": "stream", "0002": "dgram", "0005": "seqpacket"}
_SOCKET_RE = re.compile(r"socket:\[(\d+)\]")
#: USER_HZ: the unit of /proc/<pid>/stat's times.
CLOCK_TICKS = 100


@dataclass
class Collected:
    """What the collect script found, as plain data ready for JSON."""

    processes: list[dict[str, Any]] = field(default_factory=list)
    sockets: list[dict[str, Any]] = field(default_factory=list)
    mounts: list[dict[str, Any]] = field(default_factory=list)
    complete: bool = False  # the END line arrived
    boot_time: float | None = None  # seconds since the epoch
    boot_time_error: float = 1.0  # how far the boot time may be off, seconds


def _b64(text: str) -> bytes:
    if text == "-":
        return b""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return b""


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def parse_status(text: str) -> dict[str, Any]:
    """Name, state, ppid, uids and gids (real, effective) and threads from /proc/PID/status."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key] = value.strip()

    def ids(key: str) -> list[int]:
        return [int(x) for x in fields.get(key, "").split() if x.isdigit()]

    uids, gids = ids("Uid"), ids("Gid")
    ppid = fields.get("PPid", "")
    return {
        "name": fields.get("Name", ""),
        "state": fields.get("State", ""),
        "ppid": int(ppid) if ppid.isdigit() else None,
        "uid": uids[0] if uids else None,
        "euid": uids[1] if len(uids) > 1 else None,
        "gid": gids[0] if gids else None,
        "threads": int(fields["Threads"]) if fields.get("Threads", "").isdigit() else None,
    }


def parse_cmdline(data: bytes) -> list[str]:
    """argv from /proc/PID/cmdline (NUL-separated; a rewritten one may lack the last NUL)."""
    if not data:
        return []
    return [_text(arg) for arg in data.rstrip(b"\0").split(b"\0")]


def parse_links(text: str) -> dict[str, Any]:
    """cwd, exe, root and open fds from ``stat -c %N`` lines: ``'/proc/1/fd/3' -> 'socket:[9]'``.

    A link target may hold a newline (file names are the target's to choose): a line that does
    not start a new record continues the previous target.
    """
    out: dict[str, Any] = {"cwd": None, "exe": None, "root": None, "fds": []}
    record = re.compile(r"^'/proc/\d+/(cwd|exe|root|fd/(\d+))' -> '(.*)$")
    current: dict[str, Any] | None = None
    for line in text.split("\n"):
        match = record.match(line)
        if match:
            current = {"which": match.group(1), "fd": match.group(2), "target": match.group(3)}
            _store_link(out, current)
        elif current is not None and line:
            current["target"] += "\n" + line
            _store_link(out, current)
    return out


def _store_link(out: dict[str, Any], rec: dict[str, Any]) -> None:
    target = rec["target"][:-1] if rec["target"].endswith("'") else rec["target"]
    if rec["fd"] is not None:
        fds = out["fds"]
        if fds and fds[-1]["fd"] == int(rec["fd"]):
            fds[-1]["target"] = target
        else:
            fds.append({"fd": int(rec["fd"]), "target": target})
    else:
        out[rec["which"]] = target


def _addr(hexaddr: str) -> str:
    raw = bytes.fromhex(hexaddr)
    # The kernel prints each 32-bit word in host (little-endian) order.
    swapped = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(swapped))
    addr = ipaddress.IPv6Address(swapped)
    return str(addr.ipv4_mapped) if addr.ipv4_mapped else str(addr)


def parse_net(kind: str, text: str) -> list[dict[str, Any]]:
    """Sockets from /proc/net/tcp, tcp6, udp or udp6."""
    out: list[dict[str, Any]] = []
    for line in text.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 10 or ":" not in cols[1]:
            continue
        try:
            local, lport = cols[1].split(":")
            remote, rport = cols[2].split(":")
            state = cols[3].upper()
            sock = {
                "proto": kind,
                "local_address": _addr(local),
                "local_port": int(lport, 16),
                "remote_address": _addr(remote),
                "remote_port": int(rport, 16),
                "state": TCP_STATES.get(state, state) if kind.startswith("tcp") else state,
                "uid": int(cols[7]),
                "inode": int(cols[9]),
            }
        except ValueError:
            continue
        if kind.startswith("udp"):
            sock["state"] = "LISTEN" if sock["remote_port"] == 0 else "CONNECTED"
        out.append(sock)
    return out


def parse_unix(text: str) -> list[dict[str, Any]]:
    """Sockets from /proc/net/unix (Num RefCount Protocol Flags Type St Inode Path)."""
    out: list[dict[str, Any]] = []
    for line in text.splitlines()[1:]:
        cols = line.split(None, 7)
        if len(cols) < 7:
            continue
        try:
            flags, inode = int(cols[3], 16), int(cols[6])
        except ValueError:
            continue
        listening = bool(flags & 0x10000)  # __SO_ACCEPTCON
        out.append(
            {
                "proto": "unix",
                "type": UNIX_TYPES.get(cols[4], cols[4]),
                "state": "LISTEN" if listening else ("CONNECTED" if cols[5] == "03" else "OTHER"),
                "inode": inode,
                "path": cols[7] if len(cols) > 7 else "",
            }
        )
    return out


def _unescape_mount(text: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def parse_mountinfo(text: str) -> list[dict[str, Any]]:
    """Mounts from /proc/PID/mountinfo, with octal escapes (``\\040``) decoded."""
    out: list[dict[str, Any]] = []
    for line in text.splitlines():
        cols = line.split(" ")
        if len(cols) < 10 or "-" not in cols[6:]:
            continue
        sep = cols.index("-", 6)
        out.append(
            {
                "id": int(cols[0]) if cols[0].isdigit() else None,
                "parent": int(cols[1]) if cols[1].isdigit() else None,
                "root": _unescape_mount(cols[3]),
                "mount_point": _unescape_mount(cols[4]),
                "options": cols[5],
                "fstype": cols[sep + 1] if len(cols) > sep + 1 else "",
                "source": _unescape_mount(cols[sep + 2]) if len(cols) > sep + 2 else "",
                "super_options": cols[sep + 3] if len(cols) > sep + 3 else "",
            }
        )
    return out


def start_ticks(stat: str) -> int | None:
    """Field 22 of /proc/<pid>/stat (starttime, clock ticks after boot); the name in field 2
    may hold spaces and parentheses, so fields are counted from its last ')'."""
    fields = stat.rpartition(")")[2].split()
    return int(fields[19]) if len(fields) > 19 and fields[19].isdigit() else None


def start_time(boot_time: float | None, ticks: int | None) -> str | None:
    """UTC ISO 8601 time a process started, from the boot time and its starttime ticks."""
    if boot_time is None or ticks is None:
        return None
    moment = datetime.fromtimestamp(boot_time + ticks / CLOCK_TICKS, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _boot_from_clock(wall: str, uptime: str) -> float | None:
    """The boot time from the wall clock and the uptime read together; None when either is
    missing or they disagree with any plausible machine (a boot in the future, before 2000)."""
    try:
        boot = float(wall) - float(uptime)
    except ValueError:
        return None
    return boot if 946684800 < boot < float(wall) else None


def parse_collect(text: str) -> Collected:
    """Parse the collect script's stdout; see the module doc for the framing."""
    result = Collected()
    target_pid = 1
    self_pid: int | None = None
    procs: dict[int, dict[str, Any]] = {}
    ticks: dict[int, int | None] = {}
    cgroups: dict[int, bytes] = {}
    for line in text.splitlines():
        parts = line.split(" ")
        tag = parts[0]
        if tag == "SELF" and len(parts) == 2 and parts[1].isdigit():
            self_pid = int(parts[1])
        elif tag == "TARGET" and len(parts) == 2 and parts[1].isdigit():
            target_pid = int(parts[1])
        elif tag == "P" and len(parts) in (5, 6) and parts[1].isdigit():
            status = parse_status(_text(_b64(parts[2])))
            if not status["name"] and status["ppid"] is None:
                continue  # the process ended while it was read
            proc: dict[str, Any] = {"pid": int(parts[1]), **status}
            proc["cmdline"] = parse_cmdline(_b64(parts[3]))
            proc.update(parse_links(_text(_b64(parts[4]))))
            # The live environment (NUL-separated like cmdline); redacted with the rest of meta.
            proc["environ"] = parse_cmdline(_b64(parts[5])) if len(parts) == 6 else None
            procs[proc["pid"]] = proc
        elif tag == "B" and len(parts) == 2 and parts[1].isdigit():
            if result.boot_time is None:
                result.boot_time = int(parts[1])
        elif tag == "C" and len(parts) == 3:
            precise = _boot_from_clock(parts[1], parts[2])
            if precise is not None:
                result.boot_time, result.boot_time_error = precise, 0.02
        elif tag == "T" and len(parts) in (3, 4) and parts[1].isdigit():
            ticks[int(parts[1])] = start_ticks(_text(_b64(parts[2])))
            if len(parts) == 4:
                cgroups[int(parts[1])] = _b64(parts[3])
        elif tag == "N" and len(parts) == 3:
            body = _text(_b64(parts[2]))
            if parts[1] == "unix":
                result.sockets += parse_unix(body)
            elif parts[1] in ("tcp", "tcp6", "udp", "udp6"):
                result.sockets += parse_net(parts[1], body)
        elif tag == "M" and len(parts) == 2:
            result.mounts = parse_mountinfo(_text(_b64(parts[1])))
        elif tag == "END":
            result.complete = True
    for pid, proc in procs.items():
        proc["started"] = start_time(result.boot_time, ticks.get(pid))
        proc["started_error"] = result.boot_time_error if proc["started"] else None
    own = _own_processes(procs, self_pid) | _warm_sidecars(procs, cgroups, target_pid)
    mine = cgroups.get(self_pid) if self_pid is not None else None
    # Each container has a cgroup of its own where the engine manages cgroups. Rootless Podman
    # on cgroup v1 manages none: the target, the sidecar and every other container of that user
    # share one, and the rule would leave out every process of the target.
    if mine and mine != cgroups.get(target_pid):
        own.update(pid for pid, group in cgroups.items() if group == mine)
    result.processes = [p for pid, p in sorted(procs.items()) if pid not in own]
    _match_sockets(result.sockets, result.processes)
    return result


def _warm_sidecars(procs: dict[int, dict[str, Any]], cgroups: dict[int, bytes],
                   target_pid: int) -> set[int]:
    """Idle loops of our warm sidecars, their reapers and what they run (their sleeps).

    Both tests must hold, so that no process of the target can hide by copying the argv: it
    would still be in the target's cgroup.
    """
    mine = cgroups.get(target_pid, b"")
    idle = {pid for pid, proc in procs.items()
            if proc.get("cmdline", [])[-3:] == [SHELL, "-c", IDLE_SCRIPT]
            and mine and cgroups.get(pid) and cgroups[pid] != mine}
    return idle | {pid for pid in procs if any(_descends(procs, pid, top) for top in idle)}


def _own_processes(procs: dict[int, dict[str, Any]], self_pid: int | None) -> set[int]:
    """The collecting shell, its ancestors inside the namespace, and all its descendants."""
    if self_pid is None:
        return set()
    own = {self_pid}
    pid = procs.get(self_pid, {}).get("ppid")
    while pid and pid in procs and pid not in own:
        own.add(pid)
        pid = procs[pid].get("ppid")
    own.update(pid for pid in procs if _descends(procs, pid, self_pid))
    return own


def _descends(procs: dict[int, dict[str, Any]], pid: int, ancestor: int) -> bool:
    seen: set[int] = set()
    while pid in procs and pid not in seen:
        seen.add(pid)
        parent = procs[pid].get("ppid")
        if parent == ancestor:
            return True
        if not parent:
            return False
        pid = parent
    return False


def _match_sockets(sockets: list[dict[str, Any]], processes: list[dict[str, Any]]) -> None:
    holders: dict[int, list[dict[str, Any]]] = {}
    for proc in processes:
        for fd in proc.get("fds", []):
            match = _SOCKET_RE.fullmatch(fd["target"])
            if match:
                holders.setdefault(int(match.group(1)), []).append(
                    {"pid": proc["pid"], "fd": fd["fd"], "name": proc.get("name", "")}
                )
    for sock in sockets:
        sock["processes"] = holders.get(sock["inode"], [])
