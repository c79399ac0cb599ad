"""OpenSSH signatures (PROTOCOL.sshsig), written and checked here so stock ``ssh-keygen -Y
verify`` accepts what we sign and we accept what it signs.

A signature blob is::

    byte[6]  "SSHSIG"
    uint32   1 (version)
    string   public key (SSH wire format)
    string   namespace
    string   reserved (empty)
    string   hash algorithm ("sha512"; "sha256" is read too)
    string   signature: string algorithm name, string signature bytes

and the key signs ``"SSHSIG" || string namespace || string reserved || string hash_algorithm ||
string H(message)``. Ed25519 signs that blob as is; ECDSA (nistp256/384/521) hashes it with
SHA-256/384/512 and the signature bytes are ``mpint r || mpint s``; RSA signs with
``rsa-sha2-512`` (PKCS#1 v1.5, SHA-512). The armored form is the blob in base64, 70 columns,
between ``-----BEGIN SSH SIGNATURE-----`` and ``-----END SSH SIGNATURE-----``.

Keys are OpenSSH (``-----BEGIN OPENSSH PRIVATE KEY-----``) or PEM private key files, read with the
``cryptography`` package. An encrypted OpenSSH key needs its passphrase and, to derive the key
from it, the ``bcrypt`` package; without it the error says so (and how to sign with ssh-keygen).
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

MAGIC = b"SSHSIG"
VERSION = 1
HASH_ALGORITHM = "sha512"
BEGIN = "-----BEGIN SSH SIGNATURE-----"
END = "-----END SSH SIGNATURE-----"
_HASHES: dict[str, Callable[[bytes], Any]] = {"sha512": hashlib.sha512, "sha256": hashlib.sha256}
_CURVES = {"secp256r1": "nistp256", "secp384r1": "nistp384", "secp521r1": "nistp521"}
_CURVE_HASH = {"nistp256": "SHA256", "nistp384": "SHA384", "nistp521": "SHA512"}
#: Key types a public key line or an allowed_signers line may name.
KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
             "ecdsa-sha2-nistp521")


class SigError(Exception):
    """A signature or key that cannot be read or does not verify; the message says why."""


class KeyLocked(SigError):
    """The private key is encrypted and no passphrase was given."""


# -- SSH wire format -----------------------------------------------------------------------------


def string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def mpint(value: int) -> bytes:
    """A non-negative integer as an SSH mpint (a leading zero byte when the top bit is set)."""
    if value == 0:
        return string(b"")
    raw = value.to_bytes((value.bit_length() + 8) // 8, "big")
    return string(raw)


class Reader:
    """Reads SSH wire-format fields; SigError on anything short or left over."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, size: int) -> bytes:
        if size < 0 or self.pos + size > len(self.data):
            raise SigError("the signature is truncated")
        out = self.data[self.pos : self.pos + size]
        self.pos += size
        return out

    def u32(self) -> int:
        value: int = struct.unpack(">I", self.take(4))[0]
        return value

    def string(self) -> bytes:
        return self.take(self.u32())

    def mpint(self) -> int:
        raw = self.string()
        if raw[:1] and raw[0] & 0x80:
            raise SigError("a negative number in an ECDSA signature")
        return int.from_bytes(raw, "big")

    def end(self) -> None:
        if self.pos != len(self.data):
            raise SigError("the signature has trailing bytes")


def key_type(blob: bytes) -> str:
    return Reader(blob).string().decode("ascii", "replace")


def fingerprint(blob: bytes) -> str:
    """``SHA256:...`` as ssh-keygen -l prints it."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def public_line(blob: bytes) -> str:
    return f"{key_type(blob)} {base64.b64encode(blob).decode()}"


# -- the signature -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signature:
    public_key: bytes
    namespace: str
    hash_algorithm: str
    algorithm: str
    signature: bytes
    reserved: bytes = b""

    def blob(self) -> bytes:
        inner = string(self.algorithm.encode()) + string(self.signature)
        return (MAGIC + struct.pack(">I", VERSION) + string(self.public_key)
                + string(self.namespace.encode()) + string(self.reserved)
                + string(self.hash_algorithm.encode()) + string(inner))

    def armor(self) -> str:
        text = base64.b64encode(self.blob()).decode()
        lines = [text[i : i + 70] for i in range(0, len(text), 70)]
        return "\n".join([BEGIN, *lines, END]) + "\n"


def signed_data(namespace: str, hash_algorithm: str, message: bytes, reserved: bytes = b"") -> bytes:
    """What the key signs for ``message``."""
    digest = _HASHES[hash_algorithm](message).digest()
    return (MAGIC + string(namespace.encode()) + string(reserved)
            + string(hash_algorithm.encode()) + string(digest))


def parse(armored: str | bytes) -> Signature:
    """The signature in an armored SSHSIG text."""
    text = armored.decode("ascii", "replace") if isinstance(armored, bytes) else armored
    lines = [line.strip() for line in text.strip().splitlines()]
    if len(lines) < 3 or lines[0] != BEGIN or lines[-1] != END:
        raise SigError(f"it is not an armored SSH signature ({BEGIN} ... {END})")
    try:
        blob = base64.b64decode("".join(lines[1:-1]), validate=True)
    except ValueError:
        raise SigError("its base64 is damaged") from None
    reader = Reader(blob)
    if reader.take(6) != MAGIC:
        raise SigError("it does not start with SSHSIG")
    version = reader.u32()
    if version != VERSION:
        raise SigError(f"unsupported SSHSIG version {version}")
    public_key, namespace, reserved = reader.string(), reader.string(), reader.string()
    hash_algorithm = reader.string().decode("ascii", "replace")
    inner = Reader(reader.string())
    reader.end()
    algorithm = inner.string().decode("ascii", "replace")
    sig = inner.string()
    inner.end()
    if hash_algorithm not in _HASHES:
        raise SigError(f"unsupported hash algorithm {hash_algorithm!r}")
    return Signature(public_key, namespace.decode("utf-8", "replace"), hash_algorithm, algorithm,
                     sig, reserved)


def verify(sig: Signature, message: bytes, namespace: str) -> None:
    """Raise SigError unless ``sig`` is a valid signature of ``message`` in ``namespace`` by the
    key it carries (whether that key is trusted is the caller's question)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils
    from cryptography.hazmat.primitives.serialization import load_ssh_public_key

    if sig.namespace != namespace:
        raise SigError(f"it was made for namespace {sig.namespace!r}, not {namespace!r}")
    try:
        key = load_ssh_public_key(public_line(sig.public_key).encode())
    except (ValueError, SigError) as exc:
        raise SigError(f"its public key cannot be read ({exc})") from None
    data = signed_data(sig.namespace, sig.hash_algorithm, message, sig.reserved)
    kind = key_type(sig.public_key)
    try:
        if isinstance(key, ed25519.Ed25519PublicKey) and sig.algorithm == "ssh-ed25519":
            key.verify(sig.signature, data)
        elif isinstance(key, ec.EllipticCurvePublicKey) and sig.algorithm == kind:
            curve = kind.rpartition("-")[2]
            reader = Reader(sig.signature)
            r, s = reader.mpint(), reader.mpint()
            reader.end()
            algorithm = getattr(hashes, _CURVE_HASH[curve])()
            key.verify(utils.encode_dss_signature(r, s), data, ec.ECDSA(algorithm))
        elif isinstance(key, rsa.RSAPublicKey) and sig.algorithm in ("rsa-sha2-512", "rsa-sha2-256"):
            algorithm = hashes.SHA512() if sig.algorithm == "rsa-sha2-512" else hashes.SHA256()
            key.verify(sig.signature, data, padding.PKCS1v15(), algorithm)
        else:
            raise SigError(f"signature algorithm {sig.algorithm!r} does not fit a {kind} key")
    except InvalidSignature:
        raise SigError("the signature does not match the signed data") from None


# -- signing keys --------------------------------------------------------------------------------


class Signer(Protocol):
    """What signs: a private key read here, or an agent reached through ssh-keygen."""

    public_key: bytes

    @property
    def fingerprint(self) -> str: ...

    @property
    def public_line(self) -> str: ...

    def sign(self, message: bytes, namespace: str) -> Signature: ...


class SigningKey:
    """A private key that signs SSHSIG signatures; only its public half is ever shown."""

    def __init__(self, key: Any) -> None:
        from cryptography.hazmat.primitives import serialization

        self._key = key
        line = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                             serialization.PublicFormat.OpenSSH)
        self.public_key = base64.b64decode(line.split()[1])

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key)

    @property
    def public_line(self) -> str:
        return public_line(self.public_key)

    def sign(self, message: bytes, namespace: str) -> Signature:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

        data = signed_data(namespace, HASH_ALGORITHM, message)
        key = self._key
        if isinstance(key, ed25519.Ed25519PrivateKey):
            algorithm, raw = "ssh-ed25519", key.sign(data)
        elif isinstance(key, ec.EllipticCurvePrivateKey):
            curve = _CURVES[key.curve.name]
            der = key.sign(data, ec.ECDSA(getattr(hashes, _CURVE_HASH[curve])()))
            r, s = utils.decode_dss_signature(der)
            algorithm, raw = f"ecdsa-sha2-{curve}", mpint(r) + mpint(s)
        elif isinstance(key, rsa.RSAPrivateKey):
            algorithm, raw = "rsa-sha2-512", key.sign(data, padding.PKCS1v15(), hashes.SHA512())
        else:  # load_key refuses every other kind
            raise SigError(f"cannot sign with a {type(key).__name__}")
        return Signature(self.public_key, namespace, HASH_ALGORITHM, algorithm, raw)


def load_key(data: bytes, passphrase: Callable[[], bytes | None] | None = None) -> SigningKey:
    """An Ed25519, ECDSA (P-256/384/521) or RSA private key from an OpenSSH or PEM key file.

    ``passphrase`` is asked only for an encrypted key; KeyLocked when it gives nothing.
    """
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    openssh = b"-----BEGIN OPENSSH PRIVATE KEY-----" in data
    if not openssh and b"PRIVATE KEY-----" not in data:
        raise SigError("it is not a private key file (a public key, or another format?)")

    if openssh and openssh_encrypted(data) and importlib.util.find_spec("bcrypt") is None:
        # Said before any passphrase is asked: it could not be used.
        raise SigError("it is encrypted, and decrypting OpenSSH keys needs the Python package "
                       "'bcrypt', which is not installed")

    def load(password: bytes | None) -> Any:
        if openssh:
            return serialization.load_ssh_private_key(data, password)
        return serialization.load_pem_private_key(data, password)

    try:
        try:
            key = load(None)
        except TypeError:  # encrypted: ask for the passphrase
            password = passphrase() if passphrase is not None else None
            if not password:
                raise KeyLocked("it is encrypted and no passphrase was given") from None
            key = load(password)
    except UnsupportedAlgorithm as exc:
        if "bcrypt" in str(exc):
            raise SigError("it is encrypted, and decrypting OpenSSH keys needs the Python "
                           "package 'bcrypt', which is not installed") from None
        raise SigError(f"its algorithm is not supported ({exc})") from None
    except ValueError as exc:
        raise SigError(f"it cannot be read ({exc}); a wrong passphrase?") from None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name not in _CURVES:
        raise SigError(f"its curve {key.curve.name} is not one OpenSSH signs with")
    if not isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise SigError(f"{type(key).__name__} keys are not supported (Ed25519, ECDSA or RSA)")
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size < 2048:
        raise SigError(f"a {key.key_size}-bit RSA key is too weak; use 2048 bits or more")
    return SigningKey(key)


def openssh_encrypted(data: bytes) -> bool:
    """True when an OpenSSH key file names a cipher other than "none" (its first field)."""
    text = data.decode("ascii", "replace")
    body = text.partition("-----BEGIN OPENSSH PRIVATE KEY-----")[2].partition("-----END")[0]
    try:
        raw = base64.b64decode("".join(body.split()))
        reader = Reader(raw)
        if reader.take(15) != b"openssh-key-v1\0":
            return False
        return reader.string() != b"none"
    except (ValueError, SigError):
        return False


class AgentKey:
    """A key held by ssh-agent (or a token behind it): ``ssh-keygen -Y sign -f PUBLIC_KEY`` signs,
    and the result is checked here against that public key before it is used."""

    def __init__(self, public_file: str, public_key: bytes, ssh_keygen: str) -> None:
        self.public_file = public_file
        self.public_key = public_key
        self.ssh_keygen = ssh_keygen

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key)

    @property
    def public_line(self) -> str:
        return public_line(self.public_key)

    def sign(self, message: bytes, namespace: str) -> Signature:
        import subprocess

        try:
            done = subprocess.run([self.ssh_keygen, "-q", "-Y", "sign", "-f", self.public_file, "-n",
                                   namespace], input=message, capture_output=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SigError(f"ssh-keygen -Y sign did not run ({exc})") from None
        if done.returncode != 0:
            why = done.stderr.decode("utf-8", "replace").strip().splitlines()
            raise SigError(f"ssh-keygen -Y sign failed: {why[-1] if why else done.returncode}")
        sig = parse(done.stdout)
        if sig.public_key != self.public_key:
            raise SigError("the agent signed with another key than the one asked for")
        verify(sig, message, namespace)
        return sig


def parse_public_key(text: str) -> bytes:
    """The wire blob of the first ``TYPE BASE64 [comment]`` line; SigError when there is none."""
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] in KEY_TYPES:
            try:
                blob = base64.b64decode(fields[1], validate=True)
            except ValueError:
                break
            if key_type(blob) == fields[0]:
                return blob
            break
    raise SigError("it is neither an SSH private key nor an SSH public key line")


def agent_key(public_file: str, text: str) -> AgentKey:
    """The agent's key for the public key in ``text``, checked to be loaded in the agent now."""
    import os
    import shutil
    import subprocess

    blob = parse_public_key(text)
    keygen = shutil.which("ssh-keygen")
    if keygen is None:
        raise SigError("signing with an agent's key needs OpenSSH's ssh-keygen, which is not on PATH")
    if not os.environ.get("SSH_AUTH_SOCK"):
        raise SigError("it is a public key, and no ssh-agent is reachable (SSH_AUTH_SOCK is not set)")
    ssh_add = shutil.which("ssh-add")
    if ssh_add is not None:
        try:
            listed = subprocess.run([ssh_add, "-L"], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            listed = ""
        held = set()
        for line in listed.splitlines():
            try:
                held.add(parse_public_key(line))
            except SigError:
                continue
        if blob not in held:
            raise SigError(f"the agent does not hold this key ({fingerprint(blob)}); add it with ssh-add")
    return AgentKey(public_file, blob, keygen)
