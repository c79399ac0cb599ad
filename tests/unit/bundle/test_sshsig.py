"""The SSHSIG encoder and verifier: wire format, refusals, and both directions against the real
ssh-keygen for Ed25519, ECDSA P-256 and RSA keys."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest

from distrodebug.bundle import signature, sshsig

NS = signature.NAMESPACE
needs_ssh_keygen = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen")


def _key(tmp_path: Path, kind: str, passphrase: str = "") -> Path:
    path = tmp_path / f"id_{kind}"
    args = {"ed25519": ["-t", "ed25519"], "ecdsa": ["-t", "ecdsa", "-b", "256"],
            "rsa": ["-t", "rsa", "-b", "2048"]}[kind]
    subprocess.run(["ssh-keygen", "-q", *args, "-N", passphrase, "-C", "me@lab", "-f", str(path)],
                   check=True)
    return path


def _ed25519() -> sshsig.SigningKey:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return sshsig.SigningKey(ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32))))


def test_mpint_encoding() -> None:
    assert sshsig.mpint(0) == b"\0\0\0\0"
    assert sshsig.mpint(0x7F) == b"\0\0\0\x01\x7f"
    assert sshsig.mpint(0x80) == b"\0\0\0\x02\x00\x80"  # a leading zero keeps it positive
    assert sshsig.Reader(sshsig.mpint(0x1234)).mpint() == 0x1234


def test_blob_layout_and_armor() -> None:
    key = _ed25519()
    sig = key.sign(b"sha256:00\n", NS)
    blob = sig.blob()
    reader = sshsig.Reader(blob)
    assert reader.take(6) == b"SSHSIG" and reader.u32() == 1
    assert reader.string() == key.public_key
    assert reader.string() == NS.encode() and reader.string() == b""
    assert reader.string() == b"sha512"
    inner = sshsig.Reader(reader.string())
    assert inner.string() == b"ssh-ed25519" and len(inner.string()) == 64
    reader.end()
    armored = sig.armor()
    lines = armored.splitlines()
    assert lines[0] == sshsig.BEGIN and lines[-1] == sshsig.END and armored.endswith("\n")
    assert all(len(line) <= 70 for line in lines[1:-1])
    assert sshsig.parse(armored) == sig
    # The signed data is the documented preamble, not the message itself.
    data = sshsig.signed_data(NS, "sha512", b"m")
    assert data.startswith(b"SSHSIG" + sshsig.string(NS.encode()) + sshsig.string(b""))


def test_verify_refuses_what_does_not_match() -> None:
    key = _ed25519()
    sig = key.sign(b"sha256:aa\n", NS)
    sshsig.verify(sig, b"sha256:aa\n", NS)
    with pytest.raises(sshsig.SigError, match="does not match"):
        sshsig.verify(sig, b"sha256:ab\n", NS)
    with pytest.raises(sshsig.SigError, match="namespace"):
        sshsig.verify(sig, b"sha256:aa\n", "file")
    flipped = sshsig.Signature(sig.public_key, sig.namespace, sig.hash_algorithm, sig.algorithm,
                               bytes([sig.signature[0] ^ 1]) + sig.signature[1:])
    with pytest.raises(sshsig.SigError, match="does not match"):
        sshsig.verify(flipped, b"sha256:aa\n", NS)
    wrong_alg = sshsig.Signature(sig.public_key, NS, "sha512", "rsa-sha2-512", sig.signature)
    with pytest.raises(sshsig.SigError, match="does not fit"):
        sshsig.verify(wrong_alg, b"sha256:aa\n", NS)


@pytest.mark.parametrize("text, problem", [
    ("hello", "not an armored"),
    (f"{sshsig.BEGIN}\n!!!!\n{sshsig.END}\n", "base64"),
    (f"{sshsig.BEGIN}\n{base64.b64encode(b'SSHSIH' + bytes(8)).decode()}\n{sshsig.END}\n", "SSHSIG"),
    (f"{sshsig.BEGIN}\n{base64.b64encode(b'SSHSIG' + bytes(3)).decode()}\n{sshsig.END}\n", "truncated"),
])
def test_parse_refuses_damage(text: str, problem: str) -> None:
    with pytest.raises(sshsig.SigError, match=problem):
        sshsig.parse(text)


def test_load_key_refusals(tmp_path: Path) -> None:
    with pytest.raises(sshsig.SigError, match="not a private key"):
        sshsig.load_key(b"ssh-ed25519 AAAAC3Nza me@lab\n")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pem = weak.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    with pytest.raises(sshsig.SigError, match="too weak"):
        sshsig.load_key(pem)
    locked = _ed25519()._key.private_bytes(  # a PEM key encrypted with a passphrase
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"))
    with pytest.raises(sshsig.KeyLocked):
        sshsig.load_key(locked)
    assert sshsig.load_key(locked, lambda: b"pw").public_key == _ed25519().public_key
    with pytest.raises(sshsig.SigError, match="wrong passphrase"):
        sshsig.load_key(locked, lambda: b"nope")


@needs_ssh_keygen
@pytest.mark.parametrize("kind", ["ed25519", "ecdsa", "rsa"])
def test_ssh_keygen_verifies_ours_and_we_verify_theirs(kind: str, tmp_path: Path) -> None:
    path = _key(tmp_path, kind)
    key = sshsig.load_key(path.read_bytes())
    assert key.public_line == " ".join(path.with_suffix(".pub").read_text().split()[:2])
    listed = subprocess.run(["ssh-keygen", "-lf", str(path.with_suffix(".pub"))],
                            capture_output=True, text=True, check=True).stdout
    assert key.fingerprint in listed
    message = b"sha256:" + b"ab" * 32 + b"\n"
    sig_file = tmp_path / "m.sig"
    sig_file.write_text(key.sign(message, NS).armor())
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"me@lab {key.public_line}\n")
    ours = subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", "me@lab", "-n", NS,
                           "-s", str(sig_file)], input=message, capture_output=True)
    assert ours.returncode == 0, ours.stderr
    wrong = subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", "me@lab", "-n", NS,
                            "-s", str(sig_file)], input=message + b"x", capture_output=True)
    assert wrong.returncode != 0

    theirs = subprocess.run(["ssh-keygen", "-Y", "sign", "-f", str(path), "-n", NS], input=message,
                            capture_output=True, check=True).stdout
    parsed = sshsig.parse(theirs)
    assert parsed.algorithm == {"ed25519": "ssh-ed25519", "ecdsa": "ecdsa-sha2-nistp256",
                                "rsa": "rsa-sha2-512"}[kind]
    sshsig.verify(parsed, message, NS)
    with pytest.raises(sshsig.SigError):
        sshsig.verify(parsed, message + b"x", NS)


def test_parse_signers_reads_keys_and_allowed_signers_lines() -> None:
    key = _ed25519()
    text = "\n".join([
        "# comment",
        f"{key.public_line} me@lab",
        f'alice@lab,bob@lab namespaces="{NS},file" {key.public_line}',
        f"ca@lab cert-authority {key.public_line}",
        "broken ssh-ed25519 !!!",
    ])
    allowed, notes = signature.parse_signers(text)
    assert [a.principals for a in allowed] == ["*", "alice@lab,bob@lab"]
    assert allowed[1].namespaces == [NS, "file"]
    assert all(a.public_key == key.public_key for a in allowed)
    assert any("cert-authority" in n for n in notes) and any("base64" in n for n in notes)


def test_check_bundle_signature(tmp_path: Path) -> None:
    key = _ed25519()
    bundle = tmp_path / "b.tar"
    bundle.write_bytes(b"")
    digest = "cd" * 32
    path = signature.sign_bundle(bundle, digest, key)
    assert path == tmp_path / "b.tar.sig" and (path.stat().st_mode & 0o777) == 0o600
    signers = tmp_path / "signers"
    signers.write_text(f'me@lab namespaces="file" {key.public_line}\n')
    assert signature.check(bundle, digest).ok  # valid against its own key, nothing asked
    assert not signature.check(bundle, digest, str(signers)).ok  # trusted only for "file"
    signers.write_text(f"me@lab {key.public_line}\n")
    found = signature.check(bundle, digest, str(signers))
    assert found.ok and found.principals == ["me@lab"] and found.fingerprint == key.fingerprint
    assert "ssh-keygen -Y verify" in found.ssh_keygen and digest in found.ssh_keygen
    moved = signature.check(bundle, "ce" * 32, str(signers))
    assert not moved.ok and "does not match" in moved.problem
    path.unlink()
    assert signature.check(bundle, digest).ok  # none present, none asked for
    assert not signature.check(bundle, digest, str(signers)).ok


@needs_ssh_keygen
def test_encrypted_openssh_key_is_refused_before_any_prompt(tmp_path: Path) -> None:
    import importlib.util

    path = _key(tmp_path, "ed25519", passphrase="correct horse")
    asked: list[bool] = []

    def passphrase() -> bytes:
        asked.append(True)
        return b"correct horse"

    if importlib.util.find_spec("bcrypt") is None:
        with pytest.raises(sshsig.SigError, match="bcrypt"):
            sshsig.load_key(path.read_bytes(), passphrase)
        assert not asked
    else:
        assert sshsig.load_key(path.read_bytes(), passphrase).public_key
    assert sshsig.openssh_encrypted(path.read_bytes())
    assert not sshsig.openssh_encrypted(_key(tmp_path, "ecdsa").read_bytes())


def test_signers_validity_window_and_signature_symlink(tmp_path: Path) -> None:
    key = _ed25519()
    text = "\n".join([
        f'old valid-before="20200101" {key.public_line}',
        f'later valid-after="29991231235959Z" {key.public_line}',
        f'now valid-after="20200101",valid-before="29990101Z" {key.public_line}',
        f'bad valid-after="yesterday" {key.public_line}',
    ])
    allowed, notes = signature.parse_signers(text)
    assert [a.principals for a in allowed] == ["now"]
    assert len(notes) == 3 and any("cannot read" in n for n in notes)

    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    bundle = tmp_path / "b.tar"
    signature.sig_path(bundle).symlink_to(victim)
    signature.sign_bundle(bundle, "ab" * 32, key)
    assert victim.read_text() == "keep\n" and not signature.sig_path(bundle).is_symlink()
    assert signature.check(bundle, "ab" * 32).valid
    assert not list(tmp_path.glob(".*partial*"))


def test_a_public_key_signs_only_through_a_reachable_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    key = _ed25519()
    assert sshsig.parse_public_key(f"# c\n{key.public_line} me@lab\n") == key.public_key
    with pytest.raises(sshsig.SigError, match="neither an SSH private key"):
        sshsig.parse_public_key("ssh-ed25519 AAAAB3NzaC1yc2E=")  # the blob says ssh-rsa
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    if shutil.which("ssh-keygen"):
        with pytest.raises(sshsig.SigError, match="SSH_AUTH_SOCK"):
            sshsig.agent_key("k.pub", key.public_line)
