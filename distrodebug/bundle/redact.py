"""Redact secret-looking values from environment lists, inspect data, command lines and logs.

A *name* is secret when one of its words (split at ``_ - . space`` and camelCase) is a secret
word, or ends with a long one (``DBPASSWORD``); short words only count whole, so ``KEY`` and
``API_KEY`` are secret but ``KEYBOARD``, ``MONKEY`` and ``AUTHOR`` are not. A name whose last word
says it holds a reference rather than the value (``SSL_KEY_FILE``, ``TOKEN_PATH``) is kept.
Values are replaced by :data:`REDACTED`; every function also returns how many values it replaced,
so the bundle manifest can say so. Redaction is a courtesy against casual disclosure, not a
guarantee: free text can hide secrets in shapes no pattern knows.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

REDACTED = "***REDACTED***"

# Whole words that mark a secret.
_SECRET_WORDS = frozenset(
    {
        "password", "passwd", "pass", "passphrase", "token", "tokens", "secret", "secrets",
        "key", "keys", "apikey", "credential", "credentials", "creds", "auth", "authorization",
        "session", "cookie", "cookies", "dsn", "privatekey", "secretkey", "accesskey",
    }
)  # fmt: skip
# Long words that still mark a secret as the tail of a glued word ("DBPASSWORD", "GITHUBTOKEN").
_SECRET_TAILS = ("password", "passwd", "passphrase", "token", "secret", "credentials", "apikey")
# A last word that means "this names where the secret is", not the secret itself.
_REFERENCE_WORDS = frozenset(
    {"file", "path", "dir", "directory", "name", "type", "length", "size", "ttl", "timeout",
     "expiry", "expires", "enabled", "url_path", "header", "algorithm", "id_file"}
)  # fmt: skip
_AUTH_SCHEMES = r"(?:Bearer|Basic|Digest|Token|Negotiate|Bot)"

_SPLIT_RE = re.compile(r"[_\-.\s/]+|(?<=[a-z0-9])(?=[A-Z])")
_PEM_RE = re.compile(
    r"(-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----)(.*?)(-----END (?:[A-Z0-9]+ )*PRIVATE"
    r" KEY(?: BLOCK)?-----)",
    re.DOTALL,
)
_URL_RE = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@'\"]*):([^@\s/'\"]+)@")
# NAME = value, NAME: value, "name": "value", --name=value; the value may carry an auth scheme.
_ASSIGN_RE = re.compile(
    r"(?P<name>[A-Za-z_][A-Za-z0-9_.\-]*)(?P<q>[\"']?)(?P<sep>[ \t]*[=:][ \t]*)"
    rf"(?P<scheme>{_AUTH_SCHEMES}[ \t]+)?"
    r"(?P<val>\"[^\"\n]*\"|'[^'\n]*'|[^\s,;&\"'<>]+)"
)


# Values that are secrets by their shape, whatever name holds them: GitHub, GitLab, Stripe,
# Slack and AWS keys, and JWTs (three base64url parts, the first two JSON objects: "eyJ").
_TOKEN_RE = re.compile(
    r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,}|glpat-[A-Za-z0-9_\-]{20,}"
    r"|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}|xox[abposr]-[A-Za-z0-9\-]{10,}"
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"
    r"|eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{4,})(?![A-Za-z0-9_\-])"
)
# A cheap test before the regular expression: a prefix every shape above starts with.
_TOKEN_HINTS = ("gh", "github_pat_", "glpat-", "k_live_", "k_test_", "xox", "AKIA", "ASIA", "eyJ")
# mysql's glued "-pPASSWORD" (and the like) in an argv.
_GLUED_PASSWORD_RE = re.compile(r"-p(?=[^\s=])(\S+)")


@functools.lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    """True when a variable, label, key or flag name looks like it holds a secret."""
    words = [w.lower() for w in _SPLIT_RE.split(name.strip().lstrip("-")) if w]
    if not words or words[-1] in _REFERENCE_WORDS:
        return False
    for word in words:
        if word in _SECRET_WORDS or word.endswith(_SECRET_TAILS):
            return True
    return False


def redact_text(text: str) -> tuple[str, int]:
    """Redact PEM private keys, URL passwords and ``NAME=value`` secrets in free text."""
    count = 0
    if any(hint in text for hint in _TOKEN_HINTS):
        text, count = _TOKEN_RE.subn(REDACTED, text)
    if "=" not in text and ":" not in text and "-----BEGIN" not in text:
        return text, count  # nothing any pattern below could match: most paths and names

    def pem(match: re.Match[str]) -> str:
        nonlocal count
        count += 1
        return f"{match.group(1)}\n{REDACTED}\n{match.group(3)}"

    def url(match: re.Match[str]) -> str:
        nonlocal count
        if match.group(2) == REDACTED:
            return match.group(0)
        count += 1
        return f"{match.group(1)}:{REDACTED}@"

    def assign(match: re.Match[str]) -> str:
        nonlocal count
        value = match.group("val")
        if not is_secret_name(match.group("name")) or REDACTED in value:
            return match.group(0)
        count += 1
        quote = value[0] if value[:1] in ("'", '"') and len(value) >= 2 else ""
        head = match.group("name") + match.group("q") + match.group("sep")
        return f"{head}{match.group('scheme') or ''}{quote}{REDACTED}{quote}"

    text = _PEM_RE.sub(pem, text)
    text = _URL_RE.sub(url, text)
    text = _ASSIGN_RE.sub(assign, text)
    return text, count


def redact_env(entries: list[str]) -> tuple[list[str], int]:
    """Redact an environment list of ``NAME=value`` strings (Docker's ``Config.Env``)."""
    out, count = _redact_list(entries)
    return [str(item) for item in out], count


def redact_data(data: Any) -> tuple[Any, int]:
    """Redact a JSON-like structure (inspect data, labels, process lists): a new copy and a count.

    Mapping values under a secret-looking key are replaced when they are scalars; lists of
    strings are read as ``NAME=value`` entries or as an argv where ``--password VALUE`` hides the
    next item; every other string goes through :func:`redact_text`.
    """
    if isinstance(data, Mapping):
        out: dict[Any, Any] = {}
        count = 0
        # Kubernetes env entries and the like: {"name": "API_TOKEN", "value": "..."}.
        pair_name = data.get("name") if isinstance(data.get("name"), str) else None
        for key, value in data.items():
            if key == "value" and pair_name and is_secret_name(pair_name) and _is_secret_scalar(value):
                out[key] = REDACTED
                count += 1
                continue
            if isinstance(key, str) and is_secret_name(key) and _is_secret_scalar(value):
                out[key] = REDACTED
                count += 1
            else:
                out[key], n = redact_data(value)
                count += n
        return out, count
    if isinstance(data, list | tuple):
        items, count = _redact_list(list(data))
        return items, count
    if isinstance(data, str):
        return redact_text(data)
    return data, 0


def _is_secret_scalar(value: object) -> bool:
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, str):
        return value not in ("", REDACTED)
    return isinstance(value, int | float)


def _redact_list(items: list[Any]) -> tuple[list[Any], int]:
    out: list[Any] = []
    count = 0
    hide_next = False
    for item in items:
        if hide_next and isinstance(item, str) and not item.startswith("-"):
            out.append(REDACTED)
            count += 1
            hide_next = False
            continue
        hide_next = False
        if not isinstance(item, str):
            value, n = redact_data(item)
            out.append(value)
            count += n
            continue
        name, eq, value = item.partition("=")
        if eq and _looks_like_name(name) and is_secret_name(name):
            if value in ("", REDACTED):
                out.append(item)
            else:
                out.append(f"{name}={REDACTED}")
                count += 1
            continue
        if len(out) and _GLUED_PASSWORD_RE.fullmatch(item) and item != f"-p{REDACTED}":
            out.append(f"-p{REDACTED}")  # "mysql -pS3cret": the password glued to its flag
            count += 1
            continue
        if item.startswith("-") and not eq and is_secret_name(item):
            hide_next = True  # "--password s3cret": the flag's value is the next argument
        text, n = redact_text(item)
        out.append(text)
        count += n
    return out, count


_NAME_RE = re.compile(r"-{0,2}[A-Za-z_][A-Za-z0-9_.\-]*")


def _looks_like_name(name: str) -> bool:
    return bool(_NAME_RE.fullmatch(name))
