"""Parsers for what the collect script reads from /proc, on sample texts."""

from __future__ import annotations

import base64

from distrodebug.bundle.procinfo import (
    COLLECT_SCRIPT,
    parse_cmdline,
    parse_collect,
    parse_links,
    parse_mountinfo,
    parse_net,
    parse_status,
    parse_unix,
)

STATUS = """Name:\tpython3.11
Umask:\t0022
State:\tS (sleeping)
Tgid:\t7
Pid:\t7
PPid:\t1
Uid:\t65532\t65532\t65532\t65532
Gid:\t65532\t65532\t65532\t65532
Threads:\t3
"""

# Real /proc/net lines, cut after the inode column (the parser reads no further).
_HEAD = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode"
_Z = "00000000:00000000 00:00000000 00000000"
TCP = f"""{_HEAD}
   0: 00000000:1F90 00000000:0000 0A {_Z} 65532        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:D431 01 {_Z} 65532        0 4343 1 0000000000000000 20 4 30 10 -1
"""
_ANY6 = "00000000000000000000000000000000"
TCP6 = f"""{_HEAD}
   0: {_ANY6}:0050 {_ANY6}:0000 0A {_Z}     0        0 5151 1
   1: 0000000000000000FFFF00000100007F:0050 0000000000000000FFFF00000200007F:9C40 01 {_Z} 0 0 5252
   2: 00000000000000000000000001000000:0035 {_ANY6}:0000 0A {_Z}     0        0 5353 1
"""
UDP = f"""{_HEAD} ref pointer drops
  101: 0B00007F:0035 00000000:0000 07 {_Z}     0        0 6161 2 0000000000000000 0
"""
UNIX = """Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01 7171 /run/app.sock
0000000000000000: 00000003 00000000 00000000 0001 03 7272
0000000000000000: 00000002 00000000 00000000 0002 01 7373 @abstract name
"""
MOUNTINFO = """62 137 0:59 / / rw,relatime master:4 - overlay overlay rw,lowerdir=/l,upperdir=/u
63 62 0:62 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
70 62 254:0 /var/lib/docker/volumes/data/_data /data rw,relatime - ext4 /dev/vda rw
71 62 254:0 /tmp/my\\040dir /with\\040space ro,relatime - ext4 /dev/vda rw
broken line
"""
LINKS = """'/proc/7/cwd' -> '/app'
'/proc/7/exe' -> '/usr/bin/python3.11'
'/proc/7/root' -> '/'
'/proc/7/fd/0' -> '/dev/null'
'/proc/7/fd/3' -> 'socket:[4242]'
'/proc/7/fd/4' -> '/tmp/evil
name' -> 'x'
'/proc/7/fd/5' -> 'pipe:[99]'"""


def test_parse_status() -> None:
    assert parse_status(STATUS) == {
        "name": "python3.11",
        "state": "S (sleeping)",
        "ppid": 1,
        "uid": 65532,
        "euid": 65532,
        "gid": 65532,
        "threads": 3,
    }
    assert parse_status("")["ppid"] is None


def test_parse_cmdline() -> None:
    assert parse_cmdline(b"python3\0-m\0http.server\0") == ["python3", "-m", "http.server"]
    assert parse_cmdline(b"nginx: worker process") == ["nginx: worker process"]
    assert parse_cmdline(b"") == []
    assert parse_cmdline(b"a\xffb\0")[0] == "a\udcffb"


def test_parse_links_with_a_hostile_name() -> None:
    links = parse_links(LINKS)
    assert links["cwd"] == "/app" and links["exe"] == "/usr/bin/python3.11"
    assert links["fds"] == [
        {"fd": 0, "target": "/dev/null"},
        {"fd": 3, "target": "socket:[4242]"},
        {"fd": 4, "target": "/tmp/evil\nname' -> 'x"},
        {"fd": 5, "target": "pipe:[99]"},
    ]


def test_parse_tcp() -> None:
    listen, conn = parse_net("tcp", TCP)
    assert listen == {
        "proto": "tcp",
        "local_address": "0.0.0.0",
        "local_port": 8080,
        "remote_address": "0.0.0.0",
        "remote_port": 0,
        "state": "LISTEN",
        "uid": 65532,
        "inode": 4242,
    }
    assert conn["local_address"] == "127.0.0.1" and conn["remote_port"] == 54321
    assert conn["state"] == "ESTABLISHED"


def test_parse_tcp6() -> None:
    any6, mapped, loop = parse_net("tcp6", TCP6)
    assert (any6["local_address"], any6["local_port"], any6["state"]) == ("::", 80, "LISTEN")
    assert mapped["local_address"] == "127.0.0.1" and mapped["remote_address"] == "127.0.0.2"
    assert mapped["remote_port"] == 40000
    assert loop["local_address"] == "::1" and loop["local_port"] == 53


def test_parse_udp() -> None:
    (sock,) = parse_net("udp", UDP)
    assert sock["local_address"] == "127.0.0.11" and sock["local_port"] == 53
    assert sock["state"] == "LISTEN"


def test_parse_unix() -> None:
    listening, connected, dgram = parse_unix(UNIX)
    assert listening == {
        "proto": "unix",
        "type": "stream",
        "state": "LISTEN",
        "inode": 7171,
        "path": "/run/app.sock",
    }
    assert connected["state"] == "CONNECTED" and connected["path"] == ""
    assert dgram["type"] == "dgram" and dgram["path"] == "@abstract name"


def test_parse_mountinfo() -> None:
    mounts = parse_mountinfo(MOUNTINFO)
    assert [m["mount_point"] for m in mounts] == ["/", "/proc", "/data", "/with space"]
    assert mounts[0]["fstype"] == "overlay" and mounts[1]["fstype"] == "proc"
    assert mounts[2]["root"] == "/var/lib/docker/volumes/data/_data"
    assert mounts[2]["source"] == "/dev/vda" and mounts[3]["root"] == "/tmp/my dir"


def _b(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return base64.b64encode(data).decode() or "-"


def _proc(pid: int, ppid: int, name: str, cmd: bytes, links: str = "") -> str:
    status = f"Name:\t{name}\nPPid:\t{ppid}\nUid:\t0\t0\t0\t0\n"
    return f"P {pid} {_b(status)} {_b(cmd)} {_b(links)}"


def test_parse_collect_excludes_the_sidecar_and_matches_sockets() -> None:
    text = "\n".join(
        [
            "DDCOLLECT 1",
            "SELF 40",
            _proc(1, 0, "python3", b"python3\0app.py\0", "'/proc/1/fd/3' -> 'socket:[4242]'"),
            _proc(7, 1, "worker", b"worker\0"),
            _proc(30, 0, "sh", b"sh\0"),  # the sidecar's first process
            _proc(40, 30, "sh", b"sh\0-c\0..."),  # the collecting shell
            _proc(41, 40, "base64", b"base64\0"),
            _proc(42, 41, "cat", b"cat\0"),
            "P 43 - - -",
            f"N tcp {_b(TCP)}",
            f"N unix {_b(UNIX)}",
            "N udp -",
            f"M {_b(MOUNTINFO)}",
            "END",
        ]
    )
    collected = parse_collect(text)
    assert collected.complete
    assert [p["pid"] for p in collected.processes] == [1, 7]
    assert collected.processes[0]["cmdline"] == ["python3", "app.py"]
    assert collected.processes[0]["environ"] is None  # a line without the environ field
    listen = next(s for s in collected.sockets if s["inode"] == 4242)
    assert listen["processes"] == [{"pid": 1, "fd": 3, "name": "python3"}]
    assert len(collected.mounts) == 4


def test_parse_collect_incomplete_and_garbage() -> None:
    collected = parse_collect("DDCOLLECT 1\nP 1 !!!notbase64 - -\nN tcp ???\n")
    assert not collected.complete and collected.processes == [] and collected.sockets == []


def test_collect_script_is_valid_shell() -> None:
    import shutil
    import subprocess

    shell = shutil.which("busybox")
    if shell is None:
        return
    subprocess.run([shell, "sh", "-n", "-c", COLLECT_SCRIPT], check=True)


def test_warm_sidecars_are_left_out_but_a_target_process_cannot_pose_as_one() -> None:
    from distrodebug.sidecar import IDLE_SCRIPT

    idle = f"/usr/local/bin/distrodebug-reaper\0/bin/sh\0-c\0{IDLE_SCRIPT}\0".encode()
    target, ours = _b("12:pids:/docker/aaaa\n"), _b("12:pids:/docker/bbbb\n")
    text = "\n".join([
        "DDCOLLECT 1", "SELF 90", "TARGET 1",
        _proc(1, 0, "app", b"/app\0"), f"T 1 - {target}",
        # A process of the target copying our idle loop's argv: still the target's cgroup.
        _proc(5, 1, "sh", idle[idle.index(b"/bin/sh"):]), f"T 5 - {target}",
        _proc(20, 0, "distrodebug-rea", idle), f"T 20 - {ours}",
        _proc(21, 20, "sh", idle[idle.index(b"/bin/sh"):]), f"T 21 - {ours}",
        _proc(22, 21, "sleep", b"sleep\x005\0"), f"T 22 - {ours}",
        # The collecting shell, exec'd into another warm sidecar of ours.
        _proc(90, 0, "sh", b"sh\0-c\0..."), f"T 90 - {_b('12:pids:/docker/cccc')}",
        "END",
    ])
    assert [p["pid"] for p in parse_collect(text).processes] == [1, 5]


def test_parse_collect_reads_the_live_environment() -> None:
    line = _proc(1, 0, "app", b"app\0") + " " + _b(b"MODE=prod\0API_TOKEN=s3cr3t\0")
    collected = parse_collect(f"DDCOLLECT 1\nSELF 9\n{line}\nP 2 - - - -\nEND\n")
    assert collected.processes[0]["environ"] == ["MODE=prod", "API_TOKEN=s3cr3t"]


def test_parse_collect_start_times_and_the_sidecars_cgroup() -> None:
    stat = b"1 (we ird) name) S 0 1 1 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 250 0 0"
    ours, theirs = b"0::/\n", b"0::/../abc\n"
    text = "\n".join([
        "DDCOLLECT 1", "SELF 40", "B 1796000000", "C 1796000100.250000 100.00",
        _proc(1, 0, "app", b"app\0"), f"T 1 {_b(stat)} {_b(theirs)}",
        _proc(7, 0, "reaper", b"distrodebug-reaper\0"), f"T 7 {_b(stat)} {_b(ours)}",
        _proc(9, 7, "sleep", b"sleep\0"), f"T 9 {_b(stat)} {_b(ours)}",
        _proc(40, 0, "sh", b"sh\0"), f"T 40 {_b(stat)} {_b(ours)}",
        "END",
    ])
    collected = parse_collect(text)
    assert [p["pid"] for p in collected.processes] == [1]
    # boot = 1796000100.25 - 100.00; start = boot + 250 ticks / 100
    assert collected.processes[0]["started"] == "2026-11-30T00:53:22.750Z"
    assert collected.processes[0]["started_error"] == 0.02
    fallback = parse_collect("DDCOLLECT 1\nB 1796000000\nC - \n" + _proc(1, 0, "app", b"app\0")
                             + f"\nT 1 {_b(stat)}\nEND")
    assert fallback.processes[0]["started"] == "2026-11-30T00:53:22.500Z"
    assert fallback.processes[0]["started_error"] == 1.0


def test_a_cgroup_shared_with_the_target_leaves_out_only_the_collecting_shells_own() -> None:
    # Rootless Podman on cgroup v1: every container of the user is in the user's one cgroup.
    stat = b"1 (app) S 0 1 1 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 250 0 0"
    shared = _b(b"12:pids:/user.slice/user-1000.slice\n")
    text = "\n".join([
        "DDCOLLECT 1", "SELF 40", "TARGET 1",
        _proc(1, 0, "app", b"app\0"), f"T 1 {_b(stat)} {shared}",
        _proc(2, 1, "worker", b"worker\0"), f"T 2 {_b(stat)} {shared}",
        _proc(7, 0, "reaper", b"distrodebug-reaper\0"), f"T 7 {_b(stat)} {shared}",
        _proc(40, 7, "sh", b"sh\0"), f"T 40 {_b(stat)} {shared}",
        _proc(41, 40, "cat", b"cat\0"), f"T 41 {_b(stat)} {shared}",
        "END",
    ])
    assert [p["pid"] for p in parse_collect(text).processes] == [1, 2]
