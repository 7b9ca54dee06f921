"""connect_kwargs: keepalives for frozen links unless the DSN chose its own."""

from __future__ import annotations

from dbpulse.sidecar.connection import KEEPALIVES, connect_kwargs


def test_keepalives_and_tcp_user_timeout_are_on_by_default() -> None:
    """A plain DSN gets libpq keepalives and tcp_user_timeout, our application_name and timeout."""
    kwargs = connect_kwargs("postgresql://u@db/x", connect_timeout=2.4, application_name="dbpulse")
    assert kwargs["keepalives"] == 1
    assert kwargs["tcp_user_timeout"] > 0
    assert {k: kwargs[k] for k in KEEPALIVES} == KEEPALIVES
    assert kwargs["application_name"] == "dbpulse"
    assert kwargs["connect_timeout"] == 2
    assert kwargs["autocommit"] is False


def test_dsn_settings_win_over_our_keepalives() -> None:
    """Keepalive settings written in the DSN (URL or key=value) are left to the DSN."""
    url = connect_kwargs(
        "postgresql://u@db/x?keepalives_idle=60&tcp_user_timeout=0",
        connect_timeout=5,
        application_name="dbpulse",
    )
    assert "keepalives_idle" not in url
    assert "tcp_user_timeout" not in url
    assert url["keepalives_count"] == KEEPALIVES["keepalives_count"]
    kv = connect_kwargs("host=db keepalives=0", connect_timeout=5, application_name="dbpulse")
    assert "keepalives" not in kv


def test_connect_timeout_is_at_least_one_second() -> None:
    """libpq treats 0 as 'wait forever', so a sub-second timeout rounds up to 1, never down to 0."""
    kwargs = connect_kwargs("host=db", connect_timeout=0.2, application_name="dbpulse")
    assert kwargs["connect_timeout"] == 1
