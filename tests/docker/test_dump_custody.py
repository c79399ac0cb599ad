"""Evidence-grade bundles on the real engine: custody record, volatile-first phases, custody log,
and SSHSIG signatures checked by the real `ssh-keygen -Y verify` and by `verify --signer`."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("no_leftovers")]

NAMESPACE = "distrodebug-bundle"


def _keygen(tmp_path: Path, kind: str = "ed25519", passphrase: str = "") -> Path:
    key = tmp_path / f"id_{kind}"
    args = ["-t", kind] + (["-b", "3072"] if kind == "rsa" else [])
    subprocess.run(["ssh-keygen", "-q", *args, "-N", passphrase, "-C", "investigator@lab",
                    "-f", str(key)], check=True)
    return key


def _ssh_verify(allowed: Path, sig: Path, message: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", "investigator@lab",
                           "-n", NAMESPACE, "-s", str(sig)], input=message, capture_output=True)


def _manifest(bundle: Path) -> tuple[bytes, tarfile.TarInfo]:
    with tarfile.open(bundle) as tar:
        member = tar.getmember("manifest.json")
        data = tar.extractfile(member).read()  # type: ignore[union-attr]
    return data, member


def _stock_message(bundle: Path) -> bytes:
    """The signed message derived with stock tools only: tar and sha256sum."""
    shell = f"tar -xOf '{bundle}' manifest.json | sha256sum"
    digest = subprocess.run(["sh", "-c", shell], capture_output=True, text=True, check=True).stdout.split()[0]
    return f"sha256:{digest}\n".encode()


def _when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs OpenSSH's ssh-keygen")
def test_signed_dump_verifies_with_ssh_keygen_and_signer(dd: Any, make_container: Any,
                                                         python_image: str, tmp_path: Path) -> None:
    key = _keygen(tmp_path)
    public = key.with_suffix(".pub").read_text()
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f'investigator@lab namespaces="{NAMESPACE}" {public}')
    target = make_container(python_image, user="65532", environment={"API_TOKEN": "s3cr3t"})
    bundle = tmp_path / "signed.tar"
    ran = dd("dump", target.name, "-f", str(bundle), "--path", "/app", "--sign", str(key))
    assert ran.code == 0, ran.err
    digest = ran.out.split()[0].removeprefix("sha256:")
    sig = Path(f"{bundle}.sig")
    assert sig.read_text().startswith("-----BEGIN SSH SIGNATURE-----\n")
    assert (sig.stat().st_mode & 0o777) == 0o600

    manifest_bytes, _ = _manifest(bundle)
    assert hashlib.sha256(manifest_bytes).hexdigest() == digest
    custody = json.loads(manifest_bytes)["custody"]
    # No key material, key path or secret in the bundle; the public key is there.
    raw = bundle.read_bytes()
    assert b"PRIVATE KEY" not in raw and str(key).encode() not in raw and b"s3cr3t" not in raw
    assert custody["signer"]["public_key"] == " ".join(public.split()[:2])
    assert custody["command"][:3] == ["distrodebug", "dump", target.name]
    assert "<private key, not recorded>" in custody["command"]
    assert custody["collector"]["uid"] == os.getuid() and custody["collector"]["host"]
    assert custody["target"]["container_id"] == target.id
    assert custody["target"]["endpoint"].startswith(("unix://", "tcp://", "ssh://", "http"))
    assert custody["collector"]["user"]
    assert custody["target"]["container_name"] == target.name
    # A repo digest where the engine has one (Podman records one for loaded images), else the ID.
    digests = [d.rpartition("@")[2] for d in target.image.attrs["RepoDigests"] or []]
    assert custody["target"]["image_digest"] in (target.image.id, *digests)
    assert custody["clock"]["source"].startswith("system clock")

    # Order of volatility: identity, then processes/sockets/mounts, then records, filesystem last.
    phases = custody["phases"]
    assert [p["name"] for p in phases] == ["identity", "runtime state", "volatile", "records", "filesystem"]
    assert all(p["status"] == "ok" for p in phases)
    for earlier, later in zip(phases, phases[1:], strict=False):
        assert _when(earlier["ended"]) <= _when(later["started"])
    assert _when(custody["started"]) <= _when(phases[0]["started"])
    assert _when(phases[-1]["ended"]) <= _when(custody["ended"])

    # Stock OpenSSH accepts it, with the message derived by stock tools.
    assert _stock_message(bundle) == f"sha256:{digest}\n".encode()
    good = _ssh_verify(allowed, sig, _stock_message(bundle))
    assert good.returncode == 0, good.stderr
    verified = dd("verify", str(bundle), "--signer", str(allowed))
    assert verified.code == 0, verified.err
    assert "signature: GOOD" in verified.err and "investigator@lab" in verified.err
    assert f"echo sha256:{digest} | ssh-keygen -Y verify" in verified.err
    stock = verified.err.split("the digest without distrodebug: ")[1].splitlines()[0]
    derived = subprocess.run(["sh", "-c", stock], capture_output=True, text=True, check=True).stdout
    assert derived.split()[0] == digest
    assert dd("verify", str(bundle), "--signer", str(key.with_suffix(".pub"))).code == 0

    # A key the signers file does not trust: exit 3.
    (tmp_path / "other").mkdir()
    other = _keygen(tmp_path / "other")
    assert dd("verify", str(bundle), "--signer", str(other.with_suffix(".pub"))).code == 3

    # One byte of the signature changed: both fail.
    original_sig = sig.read_bytes()
    lines = original_sig.split(b"\n")
    lines[2] = bytes([lines[2][0] ^ 0x01]) + lines[2][1:]
    sig.write_bytes(b"\n".join(lines))
    assert _ssh_verify(allowed, sig, _stock_message(bundle)).returncode != 0
    bad_sig = dd("verify", str(bundle), "--signer", str(allowed))
    assert bad_sig.code == 3 and "signature: FAILED" in bad_sig.err
    sig.write_bytes(original_sig)

    # One byte of the manifest changed (still valid JSON, every hash still matching): the digest
    # moves, so both fail; verify says the hashes hold but the signature does not (exit 3).
    data, member = _manifest(bundle)
    created = data.index(b'"created": "') + len(b'"created": "')
    at = member.offset_data + created + 3  # a digit of the year
    tampered = bytearray(raw)
    tampered[at] = ord("9") if tampered[at] != ord("9") else ord("8")
    bundle.write_bytes(bytes(tampered))
    assert _ssh_verify(allowed, sig, _stock_message(bundle)).returncode != 0
    moved = dd("verify", str(bundle), "--signer", str(allowed))
    assert moved.code == 3 and moved.out.startswith("OK ") and "signature: FAILED" in moved.err

    # One byte of a stored file changed: the hashes catch it (exit 1).
    tampered = bytearray(raw)
    with tarfile.open(bundle) as tar:
        app = tar.getmember("fs/app/app.py")
    tampered[app.offset_data] ^= 0x20
    bundle.write_bytes(bytes(tampered))
    assert dd("verify", str(bundle), "--signer", str(allowed)).code == 1

    # No signature at all, but one is required: exit 3.
    bundle.write_bytes(raw)
    sig.unlink()
    missing = dd("verify", str(bundle), "--signer", str(allowed))
    assert missing.code == 3 and "no signature" in missing.err


def test_custody_log_grows_per_verify_and_extract(dd: Any, make_container: Any, static_image: str,
                                                  tmp_path: Path) -> None:
    target = make_container(static_image)
    bundle = tmp_path / "b.tar.zst"
    ran = dd("dump", target.name, "-f", str(bundle))
    assert ran.code == 0, ran.err
    digest = ran.out.split()[0]
    log = Path(f"{bundle}.custody.jsonl")
    assert (log.stat().st_mode & 0o777) == 0o600

    assert dd("verify", str(bundle)).code == 0
    assert dd("extract", str(bundle), str(tmp_path / "out")).code == 0
    verified = dd("verify", str(bundle), "--output", "json")
    assert verified.code == 0
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["action"] for e in lines] == ["collected", "verified", "extracted", "verified"]
    assert all(e["digest"] == digest and e["uid"] == os.getuid() and e["result"] == "ok"
               for e in lines)
    shown = json.loads(verified.out)
    assert shown["kind"] == "verify" and shown["outcome"] == "ok" and shown["signature"]["ok"]
    assert shown["custody_log"]["chain_ok"] and len(shown["custody_log"]["entries"]) == 4
    assert shown["custody"]["target"]["container_id"] == target.id

    if shutil.which("zstd"):  # the README's way to the digest with stock tools
        shell = f"zstd -dc '{bundle}' | tar -xO manifest.json | sha256sum"
        stock = subprocess.run(["sh", "-c", shell], capture_output=True, text=True, check=True)
        assert f"sha256:{stock.stdout.split()[0]}" == digest

    text = dd("verify", str(bundle))
    assert "custody: collected by" in text.err and "chain intact" in text.err
    assert "phase volatile" in text.err and "phase filesystem" in text.err

    # A line edited in the middle breaks the chain, and verify says so.
    edited = log.read_text().replace('"result": "ok"', '"result": "OK"', 2)
    log.write_text(edited)
    broken = dd("verify", str(bundle))
    assert broken.code == 0 and "CHAIN BROKEN" in broken.err


def test_planted_custody_log_symlink_is_not_followed(dd: Any, make_container: Any, static_image: str,
                                                     tmp_path: Path) -> None:
    target = make_container(static_image)
    target.stop(timeout=2)  # the archive path: no phase of its own for processes
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    bundle = tmp_path / "b.tar"
    Path(f"{bundle}.custody.jsonl").symlink_to(victim)
    ran = dd("dump", target.name, "-f", str(bundle))
    assert ran.code == 0, ran.err
    assert "custody log not written" in ran.err and "symbolic link" in ran.err
    verified = dd("verify", str(bundle))
    assert verified.code == 0 and "symbolic link" in verified.err
    assert dd("extract", str(bundle), str(tmp_path / "out")).code == 0
    assert victim.read_text() == "untouched\n"
    assert Path(f"{bundle}.custody.jsonl").is_symlink()
    phases = json.loads(_manifest(bundle)[0])["custody"]["phases"]
    assert [p["name"] for p in phases] == ["identity", "runtime state", "volatile", "records", "filesystem"]
    assert phases[2]["status"].startswith("skipped: the target is exited")


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs OpenSSH's ssh-keygen")
def test_encrypted_or_unusable_key_is_refused_before_the_dump(dd: Any, tmp_path: Path) -> None:
    key = _keygen(tmp_path, passphrase="correct horse")
    ran = dd("dump", "no-such-container-xyz", "-f", str(tmp_path / "x.tar"), "--sign", str(key))
    assert ran.code == 2 and "encrypted" in ran.err and "ssh-keygen -Y sign" in ran.err
    public = dd("dump", "no-such-container-xyz", "-f", str(tmp_path / "x.tar"),
                "--sign", str(key.with_suffix(".pub")), env={"SSH_AUTH_SOCK": ""})
    assert public.code == 2 and "no ssh-agent is reachable" in public.err
    junk = tmp_path / "notes.txt"
    junk.write_text("not a key\n")
    neither = dd("dump", "no-such-container-xyz", "-f", str(tmp_path / "x.tar"), "--sign", str(junk))
    assert neither.code == 2 and "neither an SSH private key" in neither.err
    to_stdout = dd("dump", "no-such-container-xyz", "-f", "-", "--sign", str(key))
    assert to_stdout.code == 2 and "stdout cannot be signed" in to_stdout.err
    assert not (tmp_path / "x.tar").exists()


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs OpenSSH's ssh-keygen")
def test_passphrase_of_an_encrypted_key_is_asked_on_the_terminal(toolbox: str, dd: Any,
                                                                  make_container: Any,
                                                                  static_image: str,
                                                                  tmp_path: Path) -> None:
    import sys

    import pexpect

    key = tmp_path / "id_pem"  # a PEM key: decrypting it needs no bcrypt
    subprocess.run(["ssh-keygen", "-q", "-t", "ecdsa", "-m", "PEM", "-N", "pass phrase", "-C", "pem@lab",
                    "-f", str(key)], check=True)
    target = make_container(static_image)
    env = {**os.environ, "DISTRODEBUG_IMAGE": toolbox, "TERM": "xterm"}

    def dump(bundle: Path, passphrase: str) -> tuple[int, str]:
        child = pexpect.spawn(sys.executable, ["-m", "distrodebug", "dump", target.name, "-f",
                                               str(bundle), "--sign", str(key)],
                              env=env, encoding="utf-8", timeout=60)
        child.expect("Passphrase for .*id_pem: ")
        child.sendline(passphrase)
        child.expect(pexpect.EOF)
        child.close()
        assert "pass phrase" not in (child.before or "")  # not echoed
        return child.exitstatus, child.before or ""

    code, text = dump(tmp_path / "wrong.tar", "not it")
    assert code == 2 and "wrong passphrase" in text and not (tmp_path / "wrong.tar").exists()
    bundle = tmp_path / "b.tar"
    code, text = dump(bundle, "pass phrase")
    assert code == 0, text
    assert dd("verify", str(bundle), "--signer", str(key.with_suffix(".pub"))).code == 0


@pytest.mark.skipif(shutil.which("ssh-agent") is None or shutil.which("ssh-add") is None,
                    reason="needs OpenSSH's ssh-agent and ssh-add")
def test_sign_with_a_key_held_by_ssh_agent(dd: Any, make_container: Any, static_image: str,
                                           tmp_path: Path) -> None:
    key = _keygen(tmp_path, "rsa")
    (tmp_path / "stranger").mkdir()
    stranger = _keygen(tmp_path / "stranger")
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        env = {"SSH_AUTH_SOCK": str(sock)}
        for _ in range(100):
            if sock.exists():
                break
            time.sleep(0.05)
        subprocess.run(["ssh-add", "-q", str(key)], env={**os.environ, **env}, check=True,
                       capture_output=True)
        target = make_container(static_image)
        refused = dd("dump", target.name, "-f", str(tmp_path / "no.tar"), "--sign",
                     str(stranger.with_suffix(".pub")), env=env)
        assert refused.code == 2 and "does not hold" in refused.err
        assert not (tmp_path / "no.tar").exists()
        bundle = tmp_path / "agent.tar"
        ran = dd("dump", target.name, "-f", str(bundle), "--sign", str(key.with_suffix(".pub")), env=env)
        assert ran.code == 0, ran.err
    finally:
        agent.terminate()
        agent.wait(timeout=10)
    digest = ran.out.split()[0]
    allowed = tmp_path / "allowed_signers"
    allowed.write_text("investigator@lab " + key.with_suffix(".pub").read_text())
    checked = _ssh_verify(allowed, Path(f"{bundle}.sig"), f"{digest}\n".encode())
    assert checked.returncode == 0, checked.stderr
    assert dd("verify", str(bundle), "--signer", str(allowed)).code == 0
    signer = json.loads(_manifest(bundle)[0])["custody"]["signer"]
    assert signer["public_key"] == " ".join(key.with_suffix(".pub").read_text().split()[:2])
