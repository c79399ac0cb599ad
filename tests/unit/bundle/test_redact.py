"""Table-driven tests of secret redaction: names, env lists, argv, free text, nested data."""

from __future__ import annotations

from typing import Any

import pytest

from distrodebug.bundle.redact import REDACTED, is_secret_name, redact_data, redact_env, redact_text

R = REDACTED


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("PASSWORD", True),
        ("DB_PASSWORD", True),
        ("MYSQL_ROOT_PASSWORD", True),
        ("PGPASSWORD", True),
        ("DB_PASS", True),
        ("passwd", True),
        ("GITHUB_TOKEN", True),
        ("githubToken", True),
        ("SECRET_KEY_BASE", True),
        ("client_secret", True),
        ("API_KEY", True),
        ("apiKey", True),
        ("ACCESS_KEY", True),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("PRIVATE_KEY", True),
        ("KEY", True),
        ("GOOGLE_APPLICATION_CREDENTIALS_JSON", True),
        ("credential", True),
        ("AUTH", True),
        ("BASIC_AUTH", True),
        ("Authorization", True),
        ("SESSION", True),
        ("SESSION_ID", True),
        ("COOKIE", True),
        ("SENTRY_DSN", True),
        ("spring.datasource.password", True),
        ("--db-password", True),
        ("KEYBOARD", False),
        ("MONKEY", False),
        ("KEYCLOAK_URL", False),
        ("AUTHOR", False),
        ("PWD", False),
        ("PATH", False),
        ("HOSTNAME", False),
        ("TOKENIZER_MODEL", False),
        ("PASSENGER", False),
        ("SSL_KEY_FILE", False),
        ("TOKEN_PATH", False),
        ("SESSION_TIMEOUT", False),
        ("", False),
    ],
)
def test_secret_names(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


@pytest.mark.parametrize(
    ("text", "expected", "count"),
    [
        ("DB_PASSWORD=hunter2 next", f"DB_PASSWORD={R} next", 1),
        ("token: abc123", f"token: {R}", 1),
        ('{"password": "p4ss", "user": "bob"}', f'{{"password": "{R}", "user": "bob"}}', 1),
        ("--api-key=XYZ --verbose", f"--api-key={R} --verbose", 1),
        ("GET /cb?code=1&access_token=zzz&x=1", f"GET /cb?code=1&access_token={R}&x=1", 1),
        ("Authorization: Bearer eyJhbGciOi.x.y", f"Authorization: Bearer {R}", 1),
        ("authorization=Basic dXNlcjpwYXNz", f"authorization=Basic {R}", 1),
        ("postgres://app:s3cr3t@db:5432/x", f"postgres://app:{R}@db:5432/x", 1),
        ("redis://:onlypass@cache:6379", f"redis://:{R}@cache:6379", 1),
        ("https://example.com/path?q=1", "https://example.com/path?q=1", 0),
        ("KEYBOARD=us MONKEY=1 PATH=/bin", "KEYBOARD=us MONKEY=1 PATH=/bin", 0),
        ("time=12:00:01 level=info", "time=12:00:01 level=info", 0),
        (f"password={R}", f"password={R}", 0),
        ("user=bob password='two words'", f"user=bob password='{R}'", 1),
    ],
)
def test_redact_text(text: str, expected: str, count: int) -> None:
    assert redact_text(text) == (expected, count)


def test_pem_private_key_block() -> None:
    key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\nabc\n-----END RSA PRIVATE KEY-----"
    text, count = redact_text(f"loaded key:\n{key}\ndone")
    assert "MIIEpAIBAAKCAQEA" not in text and count == 1
    assert "-----BEGIN RSA PRIVATE KEY-----" in text and text.endswith("done")
    public = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
    assert redact_text(public) == (public, 0)


@pytest.mark.parametrize(
    ("env", "expected", "count"),
    [
        (["A=1", "DB_PASSWORD=x", "TOKEN="], ["A=1", f"DB_PASSWORD={R}", "TOKEN="], 1),
        (["DATABASE_URL=mysql://u:pw@h/db"], [f"DATABASE_URL=mysql://u:{R}@h/db"], 1),
        (["KEYBOARD=us", "PATH=/usr/bin:/bin"], ["KEYBOARD=us", "PATH=/usr/bin:/bin"], 0),
        (["SECRET=a=b=c"], [f"SECRET={R}"], 1),
    ],
)
def test_redact_env(env: list[str], expected: list[str], count: int) -> None:
    assert redact_env(env) == (expected, count)


@pytest.mark.parametrize(
    ("argv", "expected", "count"),
    [
        (["app", "--password", "pw", "--port", "80"], ["app", "--password", R, "--port", "80"], 1),
        (["app", "--token=abc"], ["app", f"--token={R}"], 1),
        (["app", "-p", "80", "--verbose"], ["app", "-p", "80", "--verbose"], 0),
        (["app", "--secret", "--other"], ["app", "--secret", "--other"], 0),
    ],
)
def test_redact_argv(argv: list[str], expected: list[str], count: int) -> None:
    assert redact_data(argv) == (expected, count)


def test_redact_inspect_like_data() -> None:
    inspect: dict[str, Any] = {
        "Id": "abc",
        "Config": {
            "Env": ["LANG=C", "API_KEY=k1"],
            "Labels": {"maintainer": "me", "vault.token": "t0k", "debug": "true"},
            "Cmd": ["serve", "--db", "postgres://a:b@h/d"],
        },
        "HostConfig": {"Privileged": False, "Memory": 0},
        "Args": ["--session-secret", "xyz"],
        "Auth": {"username": "bob", "password": "pw"},
    }
    out, count = redact_data(inspect)
    assert out["Config"]["Env"] == ["LANG=C", f"API_KEY={R}"]
    assert out["Config"]["Labels"] == {"maintainer": "me", "vault.token": R, "debug": "true"}
    assert out["Config"]["Cmd"][2] == f"postgres://a:{R}@h/d"
    assert out["Args"] == ["--session-secret", R]
    assert out["Auth"] == {"username": "bob", "password": R}
    assert out["HostConfig"] == {"Privileged": False, "Memory": 0}
    assert count == 5
    assert inspect["Config"]["Env"][1] == "API_KEY=k1"  # the input is not modified


def test_kubernetes_env_pairs_are_redacted() -> None:
    from distrodebug.bundle.redact import REDACTED, redact_data

    data = {"env": [{"name": "API_TOKEN", "value": "s3cr3t"}, {"name": "MODE", "value": "prod"}]}
    out, count = redact_data(data)
    assert out["env"] == [{"name": "API_TOKEN", "value": REDACTED}, {"name": "MODE", "value": "prod"}]
    assert count == 1


# -- issue 11 item 15: well-known token shapes under harmless names -----------------------------

@pytest.mark.parametrize("text", [
    "GITHUB_PAT=ghp_" + "a1B2" * 9,
    "STRIPE=sk_live_" + "x9" * 12,
    "log: user logged in with eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlLXZhbHVl",
    "GET / HTTP/1.1 Authorization Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig-_abc",
    "git remote uses token ghp_" + "Z" * 36,
    "SLACK=xoxb-1234567890-abcdefghij",
    "AWS=AKIAIOSFODNN7EXAMPLE",
])
def test_token_shapes_are_redacted_whatever_their_name(text: str) -> None:
    redacted, count = redact_text(text)
    assert count >= 1 and REDACTED in redacted, redacted
    for secret in ("ghp_a1B2", "sk_live_", "c2lnbmF0dXJl", "sig-_abc", "ZZZZ", "xoxb-", "AKIAIOSF"):
        assert secret not in redacted


def test_mysql_style_glued_password_in_a_command_line() -> None:
    data, count = redact_data({"cmdline": ["mysql", "-uroot", "-pS3cretPass", "db"]})
    assert data["cmdline"] == ["mysql", "-uroot", f"-p{REDACTED}", "db"] and count == 1


def test_harmless_text_is_left_alone() -> None:
    text = "skipping ghp_ prefix docs; eyJ alone; -p 8080; sk_live_ is a Stripe prefix"
    assert redact_text(text) == (text, 0)
