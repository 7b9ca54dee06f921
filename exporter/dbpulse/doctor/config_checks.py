"""Checks of how the server and the application's role are configured.

Pool sizing against ``max_connections``, the role's timeouts as a new session resolves
them. Pure: facts in, findings out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from dbpulse.doctor.facts import Facts, PoolPlan, RoleSetting, ServerSetting
from dbpulse.doctor.findings import Finding, quote_ident

# Above this share of the usable connections, a deploy (old and new pods side by side),
# a migration or an operator's psql session tips the server over.
POOL_HEADROOM = 0.8
HEADROOM_WHY = (
    "Target: pools within {share:.0%} of the usable connections ({target} of {usable}); "
    "the other {spare} are headroom for what no pool counts: a rolling deploy's surge pods "
    "opening pools before the old ones close, a migration, an operator's psql, monitoring. "
    "Unlike the plain pool_size x workers <= max_connections - reserved, max_overflow and "
    "replicas are counted: at peak every overflow connection is a real one."
)

# pg_settings sources that mean "this session's own value, not the server's".
_SESSION_SOURCES = {"user", "database", "database user", "client", "session"}
_UNITS_MS = {
    "us": 0.001,
    "ms": 1.0,
    "s": 1000.0,
    "min": 60_000.0,
    "h": 3_600_000.0,
    "d": 86_400_000.0,
}


def parse_duration_ms(text: str) -> float | None:
    """'30s', '5min', '1500' (milliseconds) -> milliseconds; None when unparseable."""
    match = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*([a-z]*)\s*", text.strip().strip("'\""))
    if not match:
        return None
    number, unit = float(match[1]), match[2] or "ms"
    scale = _UNITS_MS.get(unit)
    return None if scale is None else number * scale


def resolve_role_setting(
    name: str, role_settings: Sequence[RoleSetting], server: ServerSetting | None
) -> tuple[str, str]:
    """The value a new session of the role gets, and where it comes from.

    PostgreSQL applies, most specific first: role in this database, role anywhere,
    anyone in this database, then the server configuration.
    """
    order = ((True, True), (True, False), (False, True))
    for for_role, for_database in order:
        for row in role_settings:
            if (row.for_role, row.for_database) != (for_role, for_database):
                continue
            for entry in row.config:
                key, _, value = entry.partition("=")
                if key == name:
                    where = {
                        (True, True): "ALTER ROLE ... IN DATABASE",
                        (True, False): "ALTER ROLE",
                        (False, True): "ALTER DATABASE",
                    }[(for_role, for_database)]
                    return value, where
    if server is None:
        return "0", "unknown"
    if server.source in _SESSION_SOURCES:
        # Our own session's value is role/database specific: fall back to the built-in one.
        return server.boot_value, "built-in default"
    return server.value, f"server ({server.source})"


def check_pool(facts: Facts, plan: PoolPlan | None) -> Finding:
    if plan is None:
        return Finding(
            "pool_sizing",
            "info",
            "pool sizing not checked",
            "pass --pool-size (and --max-overflow, --workers, --replicas) to check it",
        )
    max_conn = facts.int_setting("max_connections", 100)
    reserved = facts.int_setting("superuser_reserved_connections") + facts.int_setting(
        "reserved_connections"
    )
    usable = max_conn - reserved
    formula = (
        f"(pool_size {plan.pool_size} + max_overflow {plan.max_overflow}) x workers "
        f"{plan.workers} x replicas {plan.replicas} = {plan.demand}; usable = max_connections "
        f"{max_conn} - reserved {reserved} = {usable}"
    )
    target = int(usable * POOL_HEADROOM)
    why = HEADROOM_WHY.format(
        share=POOL_HEADROOM, target=target, usable=usable, spare=usable - target
    )
    processes = plan.workers * plan.replicas
    per_process = max(0, target // processes)
    fix = (
        f"keep pool_size + max_overflow <= {per_process} per process, or raise "
        f"max_connections to at least {int(plan.demand / POOL_HEADROOM) + reserved} "
        "(needs a restart), or put PgBouncer (transaction mode) in front"
    )
    if plan.demand > usable:
        return Finding(
            "pool_sizing",
            "error",
            "connection pools can open more connections than the server accepts",
            f"{formula}. At peak, checkouts fail with 'too many clients already'. {why}",
            fix,
        )
    if plan.demand > usable * POOL_HEADROOM:
        return Finding(
            "pool_sizing",
            "warning",
            f"connection pools use over {POOL_HEADROOM:.0%} of the usable connections",
            f"{formula}. {why}",
            fix,
        )
    return Finding("pool_sizing", "ok", "connection pools fit max_connections", f"{formula}. {why}")


def _timeout_check(facts: Facts, name: str, title: str, why: str, suggested: str) -> Finding:
    if not facts.role_exists:
        return Finding(name, "info", f"{name} not checked: role {facts.role} does not exist")
    value, source = resolve_role_setting(name, facts.role_settings, facts.settings.get(name))
    millis = parse_duration_ms(value)
    role = quote_ident(facts.role)
    if millis is None or millis > 0:
        return Finding(name, "ok", f"{name} is {value} for role {facts.role}", f"from {source}")
    return Finding(
        name,
        "warning",
        f"{title} for role {facts.role}",
        f"{name} is 0 ({source}): {why}",
        f"ALTER ROLE {role} SET {name} = '{suggested}'; (new sessions pick it up; "
        "set it per transaction with SET LOCAL where a job needs longer)",
    )


def check_statement_timeout(facts: Facts) -> Finding:
    return _timeout_check(
        facts,
        "statement_timeout",
        "no statement_timeout",
        "a runaway query holds its connection and locks until someone kills it",
        "30s",
    )


def check_idle_in_transaction_timeout(facts: Facts) -> Finding:
    return _timeout_check(
        facts,
        "idle_in_transaction_session_timeout",
        "no idle_in_transaction_session_timeout",
        "a transaction left open by a crashed request keeps its locks and blocks VACUUM",
        "60s",
    )
