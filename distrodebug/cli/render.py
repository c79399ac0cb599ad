"""How results look: one function per result for the terminal; JSON comes from ``to_json()``.

Data (command output, JSON, digests) goes to stdout; messages and tables for people to stderr.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from typing import Any

from distrodebug.bundle.evidence import Evidence
from distrodebug.bundle.extract import ExtractResult
from distrodebug.bundle.format import VerifyResult
from distrodebug.bundle.report import Summary
from distrodebug.bundle.signature import stock_digest_command
from distrodebug.bundle.timeline import Timeline
from distrodebug.bundle.writer import DumpResult
from distrodebug.cleanup import Item
from distrodebug.cli import console
from distrodebug.doctor import Report


def dump(result: DumpResult) -> None:
    for warning in result.warnings:
        console.notice(f"distrodebug: warning: {console.printable(warning)}")
    console.notice(
        f"wrote {result.path}: {result.files} files, {result.content_bytes} bytes of content, "
        f"{result.skipped} skipped, {result.redactions} values redacted, "
        f"{result.bundle_bytes} bytes on disk in {result.seconds:.1f}s"
    )
    if result.signature:
        console.notice(f"signed: {console.printable(result.signature)} (check it with "
                       "'distrodebug verify BUNDLE --signer ALLOWED_SIGNERS' or ssh-keygen -Y verify)")
    if result.path == "-":  # stdout carries the bundle itself
        console.notice(f"sha256:{result.digest}  (stdout)")
    else:
        sys.stdout.write(f"sha256:{result.digest}  {result.path}\n")


def verify(result: VerifyResult, found: Evidence | None = None) -> None:
    show = console.printable  # names come from the bundle, which may come from a hostile target
    if found is not None:
        for warning in found.warnings:
            console.notice(f"distrodebug: warning: {show(warning)}")
        if result.custody is not None:
            _custody(result.custody)
        _custody_log(found)
        _signature(found)
    for name in result.missing:
        console.notice(f"missing  {show(name)}")
    for name in result.extra:
        console.notice(f"extra    {show(name)}")
    for altered in result.altered:
        console.notice(f"altered  {show(altered.name)}: {show(altered.what)}")
    if not result.manifest_ok:
        console.notice(f"manifest: {show(result.manifest_error or 'unreadable')}")
    verdict = "OK" if result.ok else "MISMATCH"
    sys.stdout.write(f"{verdict} sha256:{result.digest}  {result.checked} entries checked\n")


def _custody(record: dict[str, Any]) -> None:
    show = console.printable
    who, tool, clock, target = (_section(record, key) for key in ("collector", "tool", "clock", "target"))
    console.notice(f"custody: collected by {show(who.get('user'))} (uid {show(who.get('uid'))}) on "
                   f"{show(who.get('host'))}, {show(record.get('started'))} to "
                   f"{show(record.get('ended'))}, distrodebug {show(tool.get('version'))}")
    command = record.get("command")
    if isinstance(command, list):
        console.notice(f"  command: {show(shlex.join(str(c) for c in command))}")
    synced = {True: "yes", False: "NO"}.get(clock.get("synchronized") is True, "unknown")
    synced = synced if isinstance(clock.get("synchronized"), bool) else "unknown"
    console.notice(f"  clock:   {show(clock.get('source'))}; synchronised: {synced}"
                   + (f" (max error {show(clock.get('max_error_us'))} us)"
                      if clock.get("max_error_us") is not None else ""))
    console.notice("  target:  " + show(", ".join(f"{k}={v}" for k, v in target.items()
                                                  if v not in (None, "", [], {}))))
    for phase in record.get("phases") or []:
        if isinstance(phase, dict):
            console.notice(f"  phase {show(phase.get('name')):<10} {show(phase.get('started'))} .. "
                           f"{show(phase.get('ended'))}  {show(phase.get('status'))}: "
                           f"{show(phase.get('what'))}")
    signer = record.get("signer")
    if isinstance(signer, dict):
        console.notice(f"  signer:  {show(signer.get('fingerprint'))}")


def _section(record: dict[str, Any], key: str) -> dict[str, Any]:
    value = record.get(key)
    return value if isinstance(value, dict) else {}


def _custody_log(found: Evidence) -> None:
    show = console.printable
    log = found.log
    state = "chain intact" if log.chain_ok else f"CHAIN BROKEN: {log.problem}"
    if not log.entries:
        console.notice(f"custody log {show(log.path)}: {show(log.problem or 'empty')}")
        return
    console.notice(f"custody log {show(log.path)} ({len(log.entries)} lines, {show(state)}):")
    for entry in log.entries[-20:]:
        digest = entry.get("digest")
        mark = "" if digest == f"sha256:{found.result.digest}" else f" (digest {show(digest)})"
        console.notice(f"  {show(entry.get('time'))} {show(entry.get('action'))} "
                       f"{show(entry.get('result'))} by {show(entry.get('user'))}"
                       f"@{show(entry.get('host'))}{mark}")


def _signature(found: Evidence) -> None:
    show = console.printable
    sig = found.signature
    if not sig.present and sig.checked_against is None:
        console.notice("signature: none (sign with 'dump --sign KEY'; see the README)")
        return
    if sig.ok and sig.checked_against is not None:
        console.notice(f"signature: GOOD, by {show(sig.fingerprint)}, trusted as "
                       f"{show(', '.join(sig.principals))} by {show(sig.checked_against)}")
    elif sig.ok:
        console.notice(f"signature: valid, by {show(sig.fingerprint)}; whose key that is was not "
                       "checked: pass --signer PUBKEY_OR_ALLOWED_SIGNERS")
    else:
        console.notice(f"signature: FAILED: {show(sig.problem)}")
    for note in sig.notes:
        console.notice(f"  signers file: {show(note)}")
    if sig.present:
        console.notice(f"  check with OpenSSH: {show(sig.ssh_keygen)}")
        console.notice(f"  the digest without distrodebug: {show(stock_digest_command(found.result.path))}")


def extract(result: ExtractResult) -> None:
    show = console.printable
    for name, why in result.refused:
        console.notice(f"refused  {show(name)}: {show(why)}")
    for name in result.altered:
        console.notice(f"altered  {show(name)}")
    if not result.manifest_ok:
        console.notice(f"manifest: {show(result.manifest_error or 'unreadable')}; nothing was "
                       "checked against it")
    console.notice(
        f"extracted {result.files} files, {result.dirs} directories, {result.symlinks} symlinks "
        f"into {show(result.dest)}"
        + (f"; {len(result.refused)} entries refused" if result.refused else "")
    )


def report(summary: Summary) -> None:
    target = summary.target
    show = console.printable
    console.notice(f"bundle sha256:{summary.digest} ({show(summary.format)}, {show(summary.created)})")
    console.table("target", ["FIELD", "VALUE"], [(k, target.get(k)) for k in (
        "container_name", "container_id", "pod", "namespace", "image", "image_id", "status", "user")
        if k in target])
    console.table("changed files", ["CHANGE", "PATH", "SIZE"],
                  [(r.change, r.path, r.size) for r in summary.changed[:50]])
    console.table("largest files", ["SIZE", "PATH"], [(r.size, r.path) for r in summary.largest])
    console.table("processes", ["PID", "PPID", "UID", "COMMAND"], [
        (p.get("pid"), p.get("ppid"), (p.get("uid") or [None])[0] if isinstance(p.get("uid"), list)
         else p.get("uid"), " ".join(p.get("cmdline") or []) or p.get("name"))
        for p in summary.processes])
    console.table("listening sockets", ["PROTO", "ADDRESS", "PROCESSES"], [
        (s.get("proto"), f"{s.get('local_address')}:{s.get('local_port')}",
         ", ".join(f"{p.get('pid')}/{p.get('name')}" for p in s.get("processes") or []))
        for s in summary.listening])
    if summary.skipped:
        console.table("skipped", ["PATH", "REASON"], [(r.path, r.reason) for r in summary.skipped[:50]])


def timeline(result: Timeline) -> None:
    """One row per line on stdout (time, kind, source, what); notes about cuts on stderr."""
    show = console.printable  # file names, commands and log lines come from the target
    for note in result.notes:
        console.notice(f"note: {show(note)}")
    width = max((len(e.source) for e in result.events), default=6)
    # A whole-second time is shown as one (07:43:10Z), not with a fraction it never had.
    lines = [f"{_when(e.time, e.precision):<27} {e.kind:<7} {'!' if e.level == 'warning' else ' '} "
             f"{show(e.source):<{width}}  {show(e.text)}\n" for e in result.events]
    sys.stdout.writelines(lines)
    if not result.events:
        console.notice("the timeline is empty (check --since and --until)")


def _when(time: str, precision: float) -> str:
    return time.replace(".000000Z", "Z") if precision >= 1 else time


def doctor(result: Report) -> None:
    console.table(f"distrodebug doctor: {result.runtime} at {result.endpoint}",
                  ["CHECK", "RESULT", "DETAIL"],
                  [(c.name, "ok" if c.ok else ("FAIL" if c.required else "warn"), c.detail)
                   for c in result.checks])
    if result.prediction:
        sys.stdout.write(f"\nprediction: {result.prediction}\n")
    sys.stdout.write(f"\n{'debugging should work' if result.ok else 'debugging cannot work'}\n")


def sessions(items: Sequence[Item]) -> None:
    rows = [(i.kind, i.name, i.target, i.session, i.created, "live" if i.alive else "leftover")
            for i in items]
    if not rows:
        console.notice("No distrodebug sessions or leftovers.")
        return
    console.table("distrodebug objects", ["KIND", "NAME", "TARGET", "SESSION", "CREATED", "STATUS"],
                  rows)
