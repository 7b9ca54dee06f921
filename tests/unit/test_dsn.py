"""Unit tests for DSN redaction and target naming."""

from __future__ import annotations

import pytest

from dbpulse.dsn import forget, redact, target_name


@pytest.mark.parametrize(
    "text",
    [
        "postgresql://app:s3cr3t@db:5432/app",
        "connect to postgres://app:s3cr3t@db/app failed",
        "host=db password=s3cr3t user=app",
        "host=db password='s3 cr3t' user=app",
        "PASSWORD = s3cr3t",
    ],
)
def test_redact_removes_password(text: str) -> None:
    """Passwords in URL and key=value forms are replaced wherever they appear."""
    out = redact(text)
    assert "s3cr3t" not in out
    assert "***" in out


def test_redact_leaves_passwordless_text_alone() -> None:
    """Text without a password is returned unchanged."""
    assert redact("postgresql://app@db/app") == "postgresql://app@db/app"


def test_target_name_has_no_password() -> None:
    """The target label is host:port/dbname and never carries the password."""
    assert target_name("postgresql://app:pw@db.internal:6432/orders") == "db.internal:6432/orders"
    assert target_name("host=/tmp dbname=x password=pw") == "localhost:5432/x"


# Issue 13 item 2: passwords libpq reads differently from a regex.
UNENCODED_URL = "postgresql://special:p@ss:w/rd%@host/db"
BACKSLASH_KV = r"host=db port=5433 dbname=app user=x password=Leak\ Tail99"
SECRET_PIECES = ("p@ss", "ss:w", "rd%", "Leak", "Tail99")


def _clean(text: str) -> bool:
    return not any(piece in text for piece in SECRET_PIECES)


def test_unencoded_password_url_is_named_unparseable() -> None:
    """libpq cannot parse the URL, so its name is a fixed marker, never an echo of it."""
    assert target_name(UNENCODED_URL) == "<unparseable dsn>"


def test_url_with_two_at_signs_is_not_named_from_its_password() -> None:
    """libpq splits at the first '@', leaving the password's tail in host and dbname."""
    name = target_name("postgresql://special:p@ss:w/rd@host/db")
    assert name == "<unparseable dsn>"


def test_backslash_escaped_password_is_named_by_host_port_db() -> None:
    """A key=value DSN is named from libpq's parse: host, port and database only."""
    assert target_name(BACKSLASH_KV) == "db:5433/app"


@pytest.mark.parametrize(
    "text",
    [
        UNENCODED_URL,
        f"connecting to {UNENCODED_URL} failed",
        BACKSLASH_KV,
        f"dsn: {BACKSLASH_KV} (retrying)",
        "password='Leak Tail99'",
        "postgresql://h/db?password=Tail99&sslmode=disable",
    ],
)
def test_redact_follows_libpq_not_a_regex(text: str) -> None:
    """No piece of a password survives redact(), however libpq would split the DSN."""
    out = redact(text)
    assert _clean(out), out


def test_known_dsn_is_scrubbed_from_libpq_error_fragments() -> None:
    """A configured DSN's fragments quoted back by libpq's parse error are scrubbed too."""
    target_name(UNENCODED_URL)  # naming a DSN registers it as known
    message = 'invalid percent-encoded token: "rd%@host/db"'
    out = redact(message)
    assert _clean(out), out
    assert redact(f"dsn={UNENCODED_URL}") == "dsn=<unparseable dsn>"


def test_known_password_is_scrubbed_wherever_it_appears() -> None:
    """Once a DSN is known, its parsed password is scrubbed even outside any DSN."""
    target_name("host=db dbname=app password=Zq9-known-secret")
    out = redact("server said: 'Zq9-known-secret' is wrong")
    assert "Zq9-known-secret" not in out


def test_redact_is_idempotent_and_keeps_urls_readable() -> None:
    """Redacting twice changes nothing more; the host and database stay visible."""
    once = redact("postgresql://app:s3cr3t@db:5432/app")
    assert once == "postgresql://app:***@db:5432/app"
    assert redact(once) == once
    assert redact("see http://example.com/x and host=db") == "see http://example.com/x and host=db"


def test_password_that_looks_like_internal_text_does_not_break_redact() -> None:
    """Passwords such as 'dbpulse-dsn' or a digit cannot corrupt how known DSNs are restored."""
    dsn = "host=db7 dbname=app password=dbpulse-dsn"
    target_name(dsn)
    for digit in range(10):
        target_name(f"host=digit{digit} dbname=app password={digit}")
    try:
        assert redact(f"using {dsn}") == "using host=db7 dbname=app password=***"
    finally:
        for digit in range(10):  # a known one-digit password would scrub every digit
            forget(f"host=digit{digit} dbname=app password={digit}")
