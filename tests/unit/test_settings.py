"""Unit tests for settings loading: precedence, strictness and error paths."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dbpulse.settings import ConfigError, load_settings, parse_listen

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "dbpulse.example.yaml"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_config_is_valid_and_documents_every_setting() -> None:
    """The shipped example loads, and names every top-level and collector setting."""
    loaded = load_settings(EXAMPLE)
    text = EXAMPLE.read_text()
    for name in type(loaded).model_fields:
        assert f"\n{name}:" in text, name
    for collector, config in loaded.collectors.items():
        assert f"  {collector}:" in text
        for field in type(config).model_fields:
            assert f"    {field}:" in text, (collector, field)


def test_flags_win_over_env_and_env_over_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flag beats DBPULSE_* which beats the YAML file."""
    path = _write(tmp_path, "interval: 7\nlisten: 127.0.0.1:1\nlog_level: error\n")
    monkeypatch.setenv("DBPULSE_LISTEN", "127.0.0.1:2")
    monkeypatch.setenv("DBPULSE_INTERVAL", "8")
    loaded = load_settings(path, interval=9.0)
    assert loaded.interval == 9.0
    assert loaded.listen == "127.0.0.1:2"
    assert loaded.log_level == "error"


def test_nested_env_reaches_collector_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """DBPULSE_COLLECTORS__STATEMENTS__TOP_N sets the nested field."""
    monkeypatch.setenv("DBPULSE_COLLECTORS__STATEMENTS__TOP_N", "17")
    assert load_settings().collectors.statements.top_n == 17


def test_unknown_keys_are_errors_with_paths(tmp_path: Path) -> None:
    """Typos at any depth are reported with their dotted field path."""
    path = _write(tmp_path, "intervl: 3\ncollectors:\n  locks:\n    intervall: 2\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    paths = {p for p, _ in info.value.problems}
    assert paths == {"intervl", "collectors.locks.intervall"}


def test_password_never_in_settings_repr(tmp_path: Path) -> None:
    """The DSN is a secret: repr and model_dump do not show the password."""
    loaded = load_settings(dsn="postgresql://u:hunter2@h/db")
    assert "hunter2" not in repr(loaded)
    assert "hunter2" not in str(loaded.model_dump())


def test_collector_interval_and_stale_defaults() -> None:
    """Per-collector interval falls back to the global one; stale_after to 3x interval."""
    loaded = load_settings(interval=10.0)
    assert loaded.collector_interval("locks") == 10.0
    assert loaded.collector_stale_after("locks") == 30.0
    assert loaded.readiness_stale_after() == 30.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0.0.0.0:9189", ("0.0.0.0", 9189)), ("[::1]:80", ("::1", 80)), (":9000", ("0.0.0.0", 9000))],
)
def test_parse_listen_accepts(text: str, expected: tuple[str, int]) -> None:
    """HOST:PORT forms, IPv6 in brackets and an empty host parse correctly."""
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["9189", "host:", "host:99999", "bad host!:80"])
def test_parse_listen_rejects(text: str) -> None:
    """Malformed listen addresses are rejected with a ValueError."""
    with pytest.raises(ValueError, match=r"\S"):
        parse_listen(text)


_scalars = st.one_of(
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=3),
)


@settings(max_examples=150, deadline=None)
@given(
    key=st.sampled_from(
        [
            "interval",
            "lock_timeout",
            "max_connections",
            "listen",
            "log_level",
            "collectors",
            "dsn",
            "nonsense_key",
            "connect_timeout",
        ]
    ),
    value=_scalars,
)
def test_fuzzed_values_load_or_raise_config_error(key: str, value: object) -> None:
    """Any value for any key either loads or raises ConfigError naming a field (never a crash)."""
    import tempfile

    import yaml

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.yaml"
        path.write_text(yaml.safe_dump({key: value}), encoding="utf-8")
        try:
            load_settings(path)
        except ConfigError as exc:
            assert exc.problems
            assert all(p.startswith(key) or p == "" for p, _ in exc.problems)


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=200))
def test_garbage_yaml_is_a_config_error(text: str) -> None:
    """Arbitrary text as a config file loads or yields ConfigError, never another exception."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "g.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            load_settings(path)
        except ConfigError as exc:
            assert exc.lines()


def test_top_level_keys_are_case_sensitive_like_nested_ones(tmp_path: Path) -> None:
    """A mis-cased top-level key is an unknown setting, not a silent alias of the real one."""
    path = _write(tmp_path, "interval: 3\nINTERVAL: 4\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert [p for p, _ in info.value.problems] == ["INTERVAL"]


@pytest.mark.parametrize(
    ("name", "reason"), [("missing.yaml", "No such file"), (".", "Is a directory")]
)
def test_unreadable_config_file_is_a_config_error_naming_it(
    tmp_path: Path, name: str, reason: str
) -> None:
    """A missing file or a directory is reported with the file's name, never skipped."""
    path = tmp_path / name
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert info.value.source == str(path)
    assert reason in info.value.lines()[0]
