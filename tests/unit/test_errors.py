"""first_line: the one password-free line dbpulse reports for an exception."""

from __future__ import annotations

from dbpulse.errors import first_line


def test_first_line_keeps_only_the_first_line() -> None:
    """libpq's DETAIL and HINT lines are dropped; the first line is kept, stripped."""
    exc = RuntimeError("  connection failed: refused\nDETAIL: more\nHINT: try again\n")
    assert first_line(exc) == "connection failed: refused"


def test_first_line_redacts_passwords() -> None:
    """A DSN inside the message loses its password, in URL and key=value form."""
    url = RuntimeError("bad dsn postgresql://app:s3cret@db:5432/x")
    assert first_line(url) == "bad dsn postgresql://app:***@db:5432/x"
    kv = RuntimeError("invalid: host=db password=s3cret dbname=x")
    assert "s3cret" not in first_line(kv)


def test_first_line_of_an_empty_message_is_the_class_name() -> None:
    """An exception without text is named by its class."""
    assert first_line(TimeoutError()) == "TimeoutError"
    assert first_line(ValueError("  \n ")) == "ValueError"
