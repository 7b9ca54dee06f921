"""Property tests: no password of any shape survives naming or redaction (issue 13.2)."""

from __future__ import annotations

from urllib.parse import quote

import psycopg
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from dbpulse.dsn import forget, redact, target_name

# Printable ASCII plus space: every character a hand-typed password might hold.
PASSWORDS = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=126), min_size=6, max_size=24
)
TEMPLATE = "postgresql://app:@db:5432/app host=db dbname=app password= <unparseable dsn> ***"


def _meaningful(password: str) -> bool:
    # A password that is part of the surrounding DSN text cannot be told apart from it.
    return password.strip() == password and password not in TEMPLATE


@settings(max_examples=300, deadline=None)
@given(PASSWORDS)
@example("p@ss:w/rd%")
@example("12/x@")
@example("Leak Tail99")
@example("a'b c=d")
def test_raw_password_never_survives_once_known(password: str) -> None:
    """A configured DSN with its password typed raw: name, DSN and libpq's error are clean."""
    assume(_meaningful(password))
    for dsn in (
        f"postgresql://app:{password}@db:5432/app",
        f"host=db password={password} dbname=app",
    ):
        _check_known(dsn, password)


def _check_known(dsn: str, password: str) -> None:
    try:
        name = target_name(dsn)
        assert password not in name
        assert password not in redact(f"connecting to {dsn} failed")
        try:
            psycopg.conninfo.conninfo_to_dict(dsn)
        except Exception as exc:
            assert password not in redact(str(exc))
    finally:
        forget(dsn)  # keep the registry (capped) from filling up across examples


@settings(max_examples=300, deadline=None)
@given(PASSWORDS)
@example("Leak Tail99")
def test_well_formed_password_never_survives_unknown(password: str) -> None:
    """Percent-encoded URLs and quoted or escaped key=value DSNs, never registered first."""
    assume(_meaningful(password))
    escaped = password.replace("\\", "\\\\").replace("'", "\\'")
    backslashed = "".join("\\" + c if c in " \\'" else c for c in password)
    for dsn in (
        f"postgresql://app:{quote(password, safe='')}@db:5432/app",
        f"postgresql://db:5432/app?password={quote(password, safe='')}&sslmode=disable",
        f"host=db password='{escaped}' dbname=app",
        f"host=db password={backslashed} dbname=app",
    ):
        assert psycopg.conninfo.conninfo_to_dict(dsn)["password"] == password
        out = redact(f"error: {dsn} (retrying)")
        assert password not in out, (dsn, out)
        assert quote(password, safe="") not in out or len(password) < 6
