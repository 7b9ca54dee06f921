"""The pool configuration lint is pure: one finding per anti-pattern."""

from __future__ import annotations

from dbpulse.inprocess.lint import PoolConfig, findings


def _config(**kw: object) -> PoolConfig:
    base: dict[str, object] = {
        "pool_class": "QueuePool",
        "dialect": "postgresql",
        "size": 5,
        "max_overflow": 10,
        "timeout": 30.0,
        "pre_ping": True,
        "recycle": -1,
        "statement_timeout": True,
    }
    base.update(kw)
    return PoolConfig(**base)  # type: ignore[arg-type]  # values differ per field


def test_good_config_has_no_findings() -> None:
    """pre_ping + statement_timeout + QueuePool is clean."""
    assert findings(_config(), under_tests=False) == []


def test_each_anti_pattern_is_named() -> None:
    """Missing pre_ping, missing statement_timeout and NullPool each yield their code."""
    codes = [code for code, _ in findings(_config(pre_ping=False), under_tests=False)]
    assert codes == ["no_pre_ping"]
    codes = [code for code, _ in findings(_config(statement_timeout=None), under_tests=False)]
    assert codes == ["no_statement_timeout"]
    null = _config(pool_class="NullPool", size=None, max_overflow=None, timeout=None)
    assert [c for c, _ in findings(null, under_tests=False)] == ["null_pool"]
    assert findings(null, under_tests=True) == []


def test_server_checks_do_not_apply_to_sqlite() -> None:
    """SQLite has no statement_timeout to forget and no server connection to pre-ping."""
    config = _config(dialect="sqlite", statement_timeout=False, pre_ping=False)
    assert findings(config, under_tests=False) == []


def test_labels_render_not_applicable_as_empty() -> None:
    """Info-metric labels are strings, '' where the pool class has no such setting."""
    labels = _config(pool_class="NullPool", size=None, max_overflow=None, timeout=None).labels()
    assert labels == {
        "pool_class": "NullPool",
        "size": "",
        "max_overflow": "",
        "timeout": "",
        "pre_ping": "true",
        "recycle": "-1",
    }
