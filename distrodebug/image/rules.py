"""What `distrodebug image` looks for, how bad each thing is, and how to fix it: pure data.

Every rule says what the thing would let an attacker do in a running container and how to get
rid of it in the terms of a multi-stage build: build in a ``FROM ... AS builder`` stage, copy only
the artifact into a distroless or ``scratch`` final stage, ``USER nonroot``.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from enum import IntEnum


class Level(IntEnum):
    """Severity of a finding; ``--fail-on LEVEL`` fails on this level and above."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def word(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Level | None:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            return None


@dataclass(frozen=True)
class Rule:
    id: str
    level: Level
    title: str
    #: What it lets an attacker do, or why it matters.
    why: str
    fix: str


_MULTISTAGE = ("Build in a 'FROM ... AS builder' stage and 'COPY --from=builder' only the artifact "
               "into a final stage FROM a distroless base or scratch")

RULES: dict[str, Rule] = {r.id: r for r in (
    Rule("shell", Level.HIGH, "a shell is left in the image",
         "anyone who gets code execution (an injection, a deserialisation bug) gets an interactive "
         "shell and can script everything else",
         f"{_MULTISTAGE}; a distroless base has no /bin/sh. Debug with 'distrodebug shell' instead "
         "of a shell in the image."),
    Rule("package-manager", Level.HIGH, "a package manager is left in the image",
         "an attacker can install any tool they need (compilers, scanners, miners) inside the "
         "container",
         f"{_MULTISTAGE}; install dependencies in the builder stage (pip install --prefix=/install, "
         "apt-get in the builder) and copy only what they produced."),
    Rule("build-tool", Level.HIGH, "compilers or build tools are left in the image",
         "an attacker can compile exploits and tools on the spot; it also means the image is "
         "hundreds of MB larger than the application",
         f"This looks like a single-stage build. {_MULTISTAGE}: the compiler stays in the builder."),
    Rule("downloader", Level.MEDIUM, "network download tools are left in the image",
         "curl, wget and nc let an attacker fetch tools and send data out without writing any code",
         f"{_MULTISTAGE}; if the app needs HTTP, use its own client library. Health checks belong "
         "in the orchestrator (httpGet probes), not in curl."),
    Rule("setuid", Level.HIGH, "setuid files",
         "a setuid-root program is a way from any user to root inside the container if it has a "
         "bug or can be misused",
         "Do not copy it into the final stage, or drop the bit in the builder (chmod u-s); a "
         "distroless final stage has none."),
    Rule("setgid", Level.MEDIUM, "setgid files",
         "a setgid program runs with its group's rights whoever starts it",
         "Do not copy it into the final stage, or drop the bit in the builder (chmod g-s)."),
    Rule("world-writable", Level.MEDIUM, "world-writable directories without the sticky bit",
         "any user in the container can replace or delete other users' files there (planting "
         "code the application later loads)",
         "Create directories with 0755 (or 1777 with the sticky bit, like /tmp) in the builder; "
         "copy them with 'COPY --chmod=755'. Prefer a read-only root and an emptyDir or tmpfs."),
    Rule("root-user", Level.HIGH, "the image runs as root",
         "a process that is broken into runs as uid 0: it can change any file in the image and "
         "is one kernel bug away from the host",
         "Add 'USER nonroot' (or 'USER 65532:65532') to the final stage; the distroless "
         ":nonroot bases set it."),
    Rule("named-user", Level.LOW, "the image's user is a name, not a number",
         "Kubernetes runAsNonRoot cannot check a user name and refuses to start the pod "
         "('image has non-numeric user')",
         "Write the numeric uid: 'USER 65532:65532' instead of 'USER nonroot'."),
    Rule("unknown-user", Level.MEDIUM, "the image's user does not exist in its /etc/passwd",
         "the container fails to start ('unable to find user')",
         "Use a numeric uid ('USER 65532:65532'), or copy an /etc/passwd that has the user."),
    Rule("private-key", Level.CRITICAL, "private keys are baked into the image",
         "anyone who can pull the image has the key; deleting it in a later layer does not help, "
         "the bytes stay in the earlier layer",
         "Never COPY keys into any stage of the final image; mount them at run time (a secret "
         "volume) or at build time with 'RUN --mount=type=secret'; add them to .dockerignore; "
         "rotate the key: it has been shipped."),
    Rule("cloud-credentials", Level.CRITICAL, "cloud or registry credentials are baked into the image",
         "anyone who can pull the image can act as that account",
         "Remove them from the build context (.dockerignore), pass them with 'RUN "
         "--mount=type=secret' in the builder only, and rotate them: they have been shipped."),
    Rule("token-file", Level.HIGH, "files with tokens or passwords are baked into the image",
         "package-registry tokens (.npmrc, .pypirc), .netrc and .env files give an attacker "
         "access to whatever they unlock",
         "Keep them out of the build context (.dockerignore) and use 'RUN --mount=type=secret' in "
         "the builder stage; rotate what was shipped."),
    Rule("git-directory", Level.MEDIUM, ".git directories are in the image",
         "the whole source history ships with the image, including anything ever committed and "
         "later removed",
         "Add .git to .dockerignore, and copy only the built artifact into the final stage."),
)}


# -- tools ------------------------------------------------------------------------------------------

_SHELLS = r"sh|bash|rbash|dash|ash|zsh|ksh|ksh93|mksh|pdksh|csh|tcsh|fish|busybox|toybox"
_PACKAGE_MANAGERS = (r"apt|apt-get|aptitude|dpkg|apk|yum|dnf|microdnf|rpm|zypper|pacman|pip|pip\d+"
                     r"(?:\.\d+)?|pipx|easy_install(?:-\d+(?:\.\d+)?)?|npm|yarn|pnpm|gem|conda|mamba"
                     r"|micromamba|composer|poetry|uv")
_BUILD_TOOLS = (r"gcc|g\+\+|cc|c\+\+|cpp|clang|clang\+\+|tcc|ld|ld\.bfd|ld\.gold|ld\.lld|as|make"
                r"|gmake|cmake|ninja|go|javac|rustc|cargo|mvn|gradle|ant|tsc|node-gyp|autoconf"
                r"|automake|libtool|bison|flex|nasm|yasm|gfortran|ghc|zig|swiftc|kotlinc|scalac")
_DOWNLOADERS = (r"curl|wget|nc|ncat|netcat|nc\.openbsd|nc\.traditional|socat|telnet|ftp|tftp|scp|sftp"
                r"|ssh|rsync")
# Versioned and cross-compiler names: gcc-12, x86_64-linux-gnu-gcc-12, pip3.11, go1.21.
_VERSION = r"(?:-?\d+(?:\.\d+)*)?"
_TRIPLET = r"(?:[a-z0-9_]+-(?:[a-z0-9_]+-)?linux-[a-z0-9_]+-)?"
_TOOL_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("shell", re.compile(rf"(?:{_SHELLS})")),
    ("package-manager", re.compile(rf"(?:{_PACKAGE_MANAGERS}){_VERSION}")),
    ("build-tool", re.compile(rf"{_TRIPLET}(?:{_BUILD_TOOLS}){_VERSION}")),
    ("downloader", re.compile(rf"(?:{_DOWNLOADERS})")),
)
#: pip as a module: `python -m pip install` works without any pip script on PATH.
_PIP_MODULE = re.compile(r"(?:^|/)(?:site|dist)-packages/pip/__init__\.py$")
_EXEC_DIRS = {"bin", "sbin"}


def tool_rule(path: str) -> str | None:
    """The rule an executable at ``path`` (no leading '/') falls under, if any.

    Only programs in a ``bin`` or ``sbin`` directory count (/usr/bin, /usr/local/go/bin,
    /opt/jdk/bin...): a data file named ``make`` in /usr/share is not a tool.
    """
    parent, _, name = path.rpartition("/")
    if posixpath.basename(parent) not in _EXEC_DIRS:
        return None
    for rule, pattern in _TOOL_PATTERNS:
        if pattern.fullmatch(name):
            return rule
    return None


def pip_module(path: str) -> bool:
    return bool(_PIP_MODULE.search(path))


# -- secrets ----------------------------------------------------------------------------------------

_KEY_NAMES = {"id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", "id_ecdsa_sk", "id_ed25519_sk", "identity"}
#: Key and keystore extensions; the text ones only count when their content holds a private key
#: (every image with ca-certificates has hundreds of public *.pem files).
_KEY_EXTENSIONS_TEXT = (".pem", ".key", ".ppk", ".asc", ".crt", ".cer")
_KEY_EXTENSIONS_BINARY = (".p12", ".pfx", ".jks", ".keystore")
PRIVATE_KEY_MARKERS = (b"PRIVATE KEY-----", b"PuTTY-User-Key-File", b"PRIVATE KEY BLOCK-----")
_CLOUD = (
    re.compile(r"(?:^|/)\.aws/credentials$"),
    re.compile(r"(?:^|/)\.config/gcloud/(?:credentials\.db|access_tokens\.db|legacy_credentials/.*)$"),
    re.compile(r"(?:^|/)application_default_credentials\.json$"),
    re.compile(r"(?:^|/)\.azure/(?:accessTokens\.json|msal_token_cache\.(?:json|bin))$"),
    re.compile(r"(?:^|/)\.git-credentials$"),
)
#: Files that only matter when they hold a credential: (pattern, what to look for in them).
_TOKEN_FILES: tuple[tuple[re.Pattern[str], re.Pattern[bytes] | None], ...] = (
    (re.compile(r"(?:^|/)\.npmrc$"), re.compile(rb"_authToken|_auth\s*=|_password", re.I)),
    (re.compile(r"(?:^|/)\.pypirc$"), re.compile(rb"^\s*password\s*[:=]", re.I | re.M)),
    (re.compile(r"(?:^|/)[._]netrc$"), re.compile(rb"\bpassword\b", re.I)),
    (re.compile(r"(?:^|/)\.docker/config\.json$"), re.compile(rb'"auths?"\s*:\s*\{\s*"[^}]*"auth"', re.S)),
    (re.compile(r"(?:^|/)\.kube/config$"), re.compile(rb"token:|client-key-data:|password:")),
    (re.compile(r"(?:^|/)\.pgpass$"), None),
    (re.compile(r"(?:^|/)[^/]*\.tfstate$"), None),
    (re.compile(r"(?:^|/)\.env(?:\.(?!example$|sample$|template$|dist$|defaults$)[^/]+)?$"), None),
)
#: How much of a candidate file is read to decide (never stored, never shown).
SNIFF_BYTES = 64 << 10


@dataclass(frozen=True)
class SecretCheck:
    """A file that may be a secret: its rule, and a pattern its content must match (None: the name
    is enough)."""

    rule: str
    needs: tuple[bytes, ...] | re.Pattern[bytes] | None


def secret_check(path: str) -> SecretCheck | None:
    """Whether a regular file at ``path`` may be a baked-in secret, and what decides it."""
    name = path.rpartition("/")[2]
    lower = name.lower()
    if name in _KEY_NAMES:
        return SecretCheck("private-key", None)
    if lower.endswith(_KEY_EXTENSIONS_BINARY):
        return SecretCheck("private-key", None)
    if lower.endswith(_KEY_EXTENSIONS_TEXT):
        return SecretCheck("private-key", PRIVATE_KEY_MARKERS)
    for pattern in _CLOUD:
        if pattern.search(path):
            return SecretCheck("cloud-credentials", None)
    for pattern, needs in _TOKEN_FILES:
        if pattern.search(path):
            return SecretCheck("cloud-credentials" if "docker/config" in pattern.pattern else "token-file",
                               needs)
    return None


def content_matches(check: SecretCheck, head: bytes | memoryview) -> bool:
    """Does the (start of the) file's content confirm the check?"""
    needs = check.needs
    if needs is None:
        return True
    data = bytes(head[:SNIFF_BYTES])
    if isinstance(needs, tuple):
        return any(marker in data for marker in needs)
    return needs.search(data) is not None


def holds_private_key(head: bytes | memoryview) -> bool:
    """A private key in any small file, whatever its name."""
    data = bytes(head[:8192])
    return any(marker in data for marker in PRIVATE_KEY_MARKERS)


def git_directory(path: str) -> str | None:
    """The ``.git`` directory ``path`` is in or is, if any."""
    parts = path.split("/")
    if ".git" not in parts:
        return None
    return "/".join(parts[: parts.index(".git") + 1])


# -- the user ---------------------------------------------------------------------------------------

def user_findings(user: str, passwd: bytes | None) -> tuple[str | None, str]:
    """The rule the image's configured USER breaks (or None), and how to describe the user."""
    name, _, group = user.partition(":")
    if not name:
        return "root-user", "no USER: runs as root (uid 0)"
    if name.isdigit():
        if int(name) == 0:
            return "root-user", f"USER {user}: uid 0"
        return None, f"uid {name}" + (f", group {group}" if group else "")
    uid = _lookup(name, passwd)
    if name == "root" or uid == 0:
        return "root-user", f"USER {user}: root (uid 0)"
    if uid is None:
        return "unknown-user", f"USER {user}: no such user in /etc/passwd"
    return "named-user", f"USER {user}: uid {uid} in /etc/passwd"


def _lookup(name: str, passwd: bytes | None) -> int | None:
    for line in (passwd or b"").decode("utf-8", "replace").splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[0] == name:
            try:
                return int(fields[2])
            except ValueError:
                return None
    return None
