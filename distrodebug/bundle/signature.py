"""Signed bundles: ``BUNDLE.sig`` is an OpenSSH signature (sshsig.py) of the manifest digest.

The signed MESSAGE is one line, ``sha256:<manifest digest>\\n`` (what ``verify`` prints after
OK), in namespace :data:`NAMESPACE`; the digest pins the manifest, which pins every member and
holds the custody record. Anyone checks it with stock OpenSSH::

    echo sha256:DIGEST | ssh-keygen -Y verify -f allowed_signers -I IDENTITY \\
        -n distrodebug-bundle -s BUNDLE.sig

and re-derives DIGEST without distrodebug: ``zstd -dc BUNDLE | tar -xO manifest.json | sha256sum``.
``verify --signer FILE`` does both: FILE is a public key (``ssh-ed25519 AAAA... comment``) or an
allowed_signers file (``principals [namespaces="..."] key``; cert-authority lines are not
supported and are left out). The private key never enters the bundle; its public half and
fingerprint go into the custody record.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import secrets
import shlex
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from distrodebug.bundle import sshsig
from distrodebug.errors import BundleError

NAMESPACE = "distrodebug-bundle"
SUFFIX = ".sig"
MAX_SIGNATURE = 64 << 10
MAX_SIGNERS = 4 << 20


def sig_path(bundle: str | Path) -> Path:
    return Path(f"{bundle}{SUFFIX}")


def message(digest: str) -> bytes:
    """The signed message for a manifest digest (hex)."""
    return f"sha256:{digest}\n".encode()


def ssh_keygen_command(bundle: str | Path, digest: str | None, signers: str | None = None) -> str:
    """The stock OpenSSH command that checks the signature (shown by verify, in the README)."""
    return (f"echo sha256:{digest or 'DIGEST'} | ssh-keygen -Y verify -f {signers or 'allowed_signers'}"
            f" -I IDENTITY -n {NAMESPACE} -s {sig_path(bundle)}")


def stock_digest_command(bundle: str | Path) -> str:
    """A shell line that prints the manifest digest with stock tools (zstd, gzip, tar, sha256sum)."""
    quoted = shlex.quote(str(bundle))
    name = str(bundle).lower()
    read = (f"zstd -dc {quoted} | tar -xO" if name.endswith(".zst")
            else f"gzip -dc {quoted} | tar -xO" if name.endswith((".gz", ".tgz"))
            else f"tar -xOf {quoted}")
    return f"{read} manifest.json | sha256sum"


def signer_record(key: sshsig.Signer) -> dict[str, str]:
    return {"public_key": key.public_line, "fingerprint": key.fingerprint, "namespace": NAMESPACE}


def sign_bundle(bundle: Path, digest: str, key: sshsig.Signer) -> Path:
    """Write ``BUNDLE.sig`` (mode 0600, replaced whole, never written through a symlink)."""
    try:
        armored = key.sign(message(digest), NAMESPACE).armor().encode()
    except sshsig.SigError as exc:
        raise BundleError(
            f"The bundle {bundle} was written, but signing it failed: {exc}.",
            f"The bundle is complete and verifies; sign it afterwards: echo sha256:{digest} | "
            f"ssh-keygen -Y sign -f KEY -n {NAMESPACE} > {sig_path(bundle)}",
        ) from None
    path = sig_path(bundle)
    tmp = path.parent / f".{path.name}.partial-{secrets.token_hex(4)}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, armored)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise BundleError(
            f"The bundle {bundle} was written, but its signature {path} could not be: {exc.strerror}.",
            f"The bundle is complete and verifies; sign it with OpenSSH: echo sha256:{digest} | "
            f"ssh-keygen -Y sign -f KEY -n {NAMESPACE} > {path}",
        ) from None
    return path


def load_signing_key(path: str, passphrase: Any = None) -> sshsig.Signer:
    """What signs for ``path``: a private key file, or a public key whose private half an
    ssh-agent holds (signed through ssh-keygen); UsageError saying what is wrong with it."""
    from distrodebug.errors import UsageError

    try:
        with open(path, "rb") as handle:
            data = handle.read(1 << 20)
    except OSError as exc:
        raise UsageError(f"Cannot read the signing key {path}: {exc.strerror}.",
                         "Give --sign an SSH private key file such as ~/.ssh/id_ed25519.") from None
    try:
        if b"PRIVATE KEY-----" not in data:
            return sshsig.agent_key(path, data.decode("utf-8", "replace"))
        return sshsig.load_key(data, passphrase)
    except sshsig.SigError as exc:
        raise UsageError(
            f"Cannot sign with {path}: {exc}.",
            "Give --sign an Ed25519, ECDSA or RSA private key file, or the .pub file of a key your "
            "ssh-agent holds (ssh-add KEY); or sign afterwards: echo sha256:DIGEST | ssh-keygen -Y "
            f"sign -f KEY -n {NAMESPACE} > BUNDLE.sig",
        ) from None


@dataclass
class Allowed:
    """One trusted key: from a public key line (any principal) or an allowed_signers line."""

    principals: str
    public_key: bytes
    namespaces: list[str] | None = None


def _split(line: str, comma: bool = False) -> list[str]:
    """Whitespace-separated fields (or comma-separated options), double quotes keeping what is
    inside them together (allowed_signers' grammar)."""
    out, current, quoted = [], "", False
    for char in line:
        if char == '"':
            quoted = not quoted
            current += char
        elif (char == "," if comma else char.isspace()) and not quoted:
            if current:
                out.append(current)
            current = ""
        else:
            current += char
    if current:
        out.append(current)
    return out


def parse_signers(text: str) -> tuple[list[Allowed], list[str]]:
    """Trusted keys from a public key file or an allowed_signers file, and notes on lines left
    out."""
    import base64

    allowed: list[Allowed] = []
    notes: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = _split(line)
        principals = "*"
        options = ""
        if fields[0] not in sshsig.KEY_TYPES:
            principals, fields = fields[0].strip('"'), fields[1:]
            if fields and fields[0] not in sshsig.KEY_TYPES:
                options, fields = fields[0], fields[1:]
        if len(fields) < 2 or fields[0] not in sshsig.KEY_TYPES:
            notes.append(f"line {number}: no public key of a supported type")
            continue
        try:
            blob = base64.b64decode(fields[1], validate=True)
        except ValueError:
            notes.append(f"line {number}: the key's base64 is damaged")
            continue
        entry = Allowed(principals, blob)
        skip = False
        for option in _split(options, comma=True):
            name, _, value = option.partition("=")
            if name.lower() == "cert-authority":
                notes.append(f"line {number}: cert-authority keys are not supported")
                skip = True
            elif name.lower() == "namespaces":
                entry.namespaces = [n for n in value.strip('"').split(",") if n]
            elif name.lower() in ("valid-after", "valid-before"):
                when = _signer_time(value.strip('"'))
                now = datetime.now(UTC)
                if when is None:
                    notes.append(f"line {number}: cannot read {name}={value}")
                    skip = True
                elif (now < when) if name.lower() == "valid-after" else (now > when):
                    notes.append(f"line {number}: the key is not valid now ({name}={value})")
                    skip = True
        if not skip:
            allowed.append(entry)
    return allowed, notes


def _signer_time(text: str) -> datetime | None:
    """allowed_signers' YYYYMMDD[HHMM[SS]][Z] (local time unless Z), as ssh-keygen reads it."""
    utc = text.endswith(("Z", "z"))
    digits = text.rstrip("Zz")
    formats = {8: "%Y%m%d", 12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}
    if not digits.isdigit() or len(digits) not in formats:
        return None
    try:
        parsed = datetime.strptime(digits, formats[len(digits)])
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if utc else parsed.astimezone(UTC)


@dataclass
class SignatureCheck:
    """What ``verify`` found about ``BUNDLE.sig``."""

    path: str
    present: bool = False
    valid: bool = False  # a correct signature of this manifest digest by the key it carries
    checked_against: str | None = None  # the --signer file, when one was given
    trusted: bool = False  # ...and that key is one the --signer file trusts for the namespace
    principals: list[str] = field(default_factory=list)
    fingerprint: str | None = None
    problem: str = ""
    ssh_keygen: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No signature asked for and none present, or a valid one (trusted when asked)."""
        if self.checked_against is not None:
            return self.valid and self.trusted
        return self.valid or not self.present

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def check(bundle: str | Path, digest: str | None, signers: str | None = None,
          signature_file: str | None = None) -> SignatureCheck:
    """Check ``BUNDLE.sig`` (or ``signature_file``) against ``digest`` and, when given, the
    trusted keys in the ``signers`` file."""
    path = Path(signature_file) if signature_file else sig_path(bundle)
    result = SignatureCheck(str(path), checked_against=signers,
                            ssh_keygen=ssh_keygen_command(bundle, digest, signers))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(MAX_SIGNATURE + 1)
    except FileNotFoundError:
        result.problem = "the bundle has no signature"
        return result
    except OSError as exc:
        result.present = True
        result.problem = f"cannot read {path}: {exc.strerror}"
        return result
    result.present = True
    if digest is None:
        result.problem = "the bundle has no readable manifest to check the signature against"
        return result
    try:
        if len(data) > MAX_SIGNATURE:
            raise sshsig.SigError("it is too large to be a signature")
        sig = sshsig.parse(data)
        result.fingerprint = sshsig.fingerprint(sig.public_key)
        sshsig.verify(sig, message(digest), NAMESPACE)
    except sshsig.SigError as exc:
        result.problem = f"bad signature: {exc}"
        return result
    result.valid = True
    if signers is None:
        return result
    try:
        with open(signers, encoding="utf-8", errors="replace") as handle:
            allowed, result.notes = parse_signers(handle.read(MAX_SIGNERS))
    except OSError as exc:
        result.problem = f"cannot read the signers file {signers}: {exc.strerror}"
        return result
    for entry in allowed:
        if entry.public_key != sig.public_key:
            continue
        if entry.namespaces is not None and not any(
                fnmatch.fnmatchcase(NAMESPACE, n) for n in entry.namespaces):
            continue
        result.principals.append(entry.principals)
    result.trusted = bool(result.principals)
    if not result.trusted:
        result.problem = (f"the signing key {result.fingerprint} is not among the trusted keys in "
                          f"{signers} (for namespace {NAMESPACE})")
    return result
