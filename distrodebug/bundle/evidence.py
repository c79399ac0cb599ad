"""``verify`` and ``extract`` as evidence handling: the hashes, the signature, the custody log.

Every verify and extract of a bundle written to a file appends its line to the custody log
(custody.py), whatever it found; a log that cannot be written is a warning, never a failure of
the check itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distrodebug.bundle import custody, signature
from distrodebug.bundle.extract import ExtractResult, extract_bundle
from distrodebug.bundle.format import VerifyResult, verify_bundle
from distrodebug.errors import BundleDamaged, ExitCode


@dataclass
class Evidence:
    """What ``verify`` found: the bundle against its manifest, the signature, the custody log."""

    result: VerifyResult
    signature: signature.SignatureCheck
    log: custody.Log
    warnings: list[str] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        if not self.result.ok:
            return "mismatch"
        return "ok" if self.signature.ok else "signature-failed"

    @property
    def exit_code(self) -> int:
        """1 when the bundle does not match its manifest, 3 when its signature fails, else 0."""
        return {"ok": ExitCode.OK, "mismatch": ExitCode.CHECK_FAILED}.get(
            self.outcome, ExitCode.SIGNATURE_FAILED)

    def to_json(self) -> dict[str, Any]:
        return {**self.result.to_json(), "outcome": self.outcome,
                "signature": self.signature.to_json(), "custody_log": self.log.to_json(),
                "warnings": self.warnings}


def verify(path: str | Path, signers: str | None = None, signature_file: str | None = None) -> Evidence:
    """Recompute every hash, check the signature (against ``signers`` when given), log it.

    A bundle too damaged to read raises BundleDamaged, after its ``damaged`` line was logged.
    """
    try:
        result = verify_bundle(path)
    except BundleDamaged as exc:
        _log_damage(path, "verified", exc)
        raise
    check = signature.check(path, result.digest, signers, signature_file)
    evidence = Evidence(result, check, custody.Log(str(custody.log_path(path))))
    detail: dict[str, Any] = {
        "checked": result.checked, "missing": len(result.missing), "extra": len(result.extra),
        "altered": len(result.altered),
        "signature": {"present": check.present, "valid": check.valid, "trusted": check.trusted,
                      "fingerprint": check.fingerprint, "signers": signers},
    }  # fmt: skip
    custody.record_safely(path, "verified", evidence.outcome, result.digest, detail,
                          evidence.warnings.append)
    evidence.log = custody.read_log(path)
    return evidence


def extract(path: str | Path, dest: str | Path, force: bool = False) -> tuple[ExtractResult, list[str]]:
    """:func:`extract_bundle`, logged; the result and the custody log's warnings."""
    try:
        result = extract_bundle(path, dest, force)
    except BundleDamaged as exc:
        _log_damage(path, "extracted", exc, {"dest": str(dest)})
        raise
    return result, record_extract(path, result)


def _log_damage(path: str | Path, action: str, exc: BundleDamaged,
                detail: dict[str, Any] | None = None) -> None:
    if not Path(path).is_file():  # only a bundle that is there has a log beside it
        return
    warnings: list[str] = []
    custody.record_safely(path, action, "damaged", None, {**(detail or {}), "why": exc.message},
                          warnings.append)
    if warnings:  # the error is what the user reads: it carries the warning
        exc.hint = f"{exc.hint} ({'; '.join(warnings)})".strip()


def record_extract(path: str | Path, result: ExtractResult) -> list[str]:
    """Append the extract's line to the custody log; the warnings it gave."""
    warnings: list[str] = []
    detail = {"dest": result.dest, "files": result.files, "refused": len(result.refused),
              "altered": len(result.altered)}
    custody.record_safely(path, "extracted", "ok" if result.ok else "failed", result.digest, detail,
                          warnings.append)
    return warnings
