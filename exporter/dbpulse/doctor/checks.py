"""Every doctor check, in report order; the check modules' names, importable from here.

The checks themselves live by what they look at: ``config_checks`` (server and role
settings), ``database_checks`` (schema and open transactions) and ``access_checks``
(what the doctor's role may see, so "cannot see" is not reported as "absent");
``findings`` holds the result type they share.
"""

from __future__ import annotations

from dbpulse.doctor.access_checks import (
    check_long_transactions_visible,
    check_pg_stat_statements,
    check_role,
)
from dbpulse.doctor.config_checks import (
    POOL_HEADROOM,
    check_idle_in_transaction_timeout,
    check_pool,
    check_statement_timeout,
    parse_duration_ms,
    resolve_role_setting,
)
from dbpulse.doctor.database_checks import (
    LONG_TRANSACTION_SECONDS,
    check_fk_missing_index,
    check_invalid_indexes,
    check_long_transactions,
    check_not_valid_constraints,
    check_plan_advice,
    check_tables_without_pk,
)
from dbpulse.doctor.facts import Facts, PoolPlan
from dbpulse.doctor.findings import (
    LEVELS,
    MAX_ITEMS,
    Finding,
    Level,
    exit_code,
    qualified,
    quote_ident,
    worst,
)

__all__ = [
    "LEVELS",
    "LONG_TRANSACTION_SECONDS",
    "MAX_ITEMS",
    "POOL_HEADROOM",
    "Finding",
    "Level",
    "check_fk_missing_index",
    "check_idle_in_transaction_timeout",
    "check_invalid_indexes",
    "check_long_transactions",
    "check_not_valid_constraints",
    "check_pg_stat_statements",
    "check_plan_advice",
    "check_pool",
    "check_role",
    "check_statement_timeout",
    "check_tables_without_pk",
    "exit_code",
    "parse_duration_ms",
    "qualified",
    "quote_ident",
    "resolve_role_setting",
    "run_checks",
    "worst",
]


def run_checks(
    facts: Facts,
    plan: PoolPlan | None,
    long_transaction_seconds: float = LONG_TRANSACTION_SECONDS,
) -> list[Finding]:
    """Every check, in the order the report shows them.

    A role that does not exist leads the report as an error (exit code 1): the doctor was
    asked about a role it cannot judge, and a typo must not pass a deploy gate.
    """
    role = check_role(facts)
    return [
        *([role] if role else []),
        check_pool(facts, plan),
        check_statement_timeout(facts),
        check_idle_in_transaction_timeout(facts),
        check_pg_stat_statements(facts),
        check_invalid_indexes(facts),
        check_not_valid_constraints(facts),
        check_fk_missing_index(facts),
        check_long_transactions_visible(
            facts, check_long_transactions(facts, long_transaction_seconds)
        ),
        check_tables_without_pk(facts),
        *([advice] if (advice := check_plan_advice(facts)) else []),
    ]
