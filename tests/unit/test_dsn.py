"""Unit tests for DSN redaction and target naming."""

from __future__ import annotations

import pytest
from dbpulse.dsn import redact, target_name


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
