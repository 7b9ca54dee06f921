"""Checks that depend on what the doctor's role may see: "cannot see" is not "absent".

An application's own role (no superuser, no pg_monitor) cannot read
``shared_preload_libraries`` and sees only its own sessions and statement texts. These
checks say so and name the grant that would show the rest, instead of reporting a
loaded extension as missing. Pure: facts in, findings out.
"""

from __future__ import annotations

from dataclasses import replace

from dbpulse.doctor.facts import Facts
from dbpulse.doctor.findings import Finding, quote_ident

_EMPTY_WITHOUT_IT = (
    "without it there is no per-query time, calls or I/O (the statements collector "
    "and the slow-query dashboard stay empty)"
)


def grant(role_name: str, builtin: str) -> str:
    return f"GRANT {builtin} TO {quote_ident(role_name)};"


def check_role(facts: Facts) -> Finding | None:
    """An error when --role names no role: its settings cannot be judged. None otherwise."""
    if facts.role_exists:
        return None
    return Finding(
        "role",
        "error",
        f"role {facts.role} does not exist",
        "--role names no role on this server, so no session runs with its settings; "
        "its timeouts were not checked",
        "check the spelling (role names are case-sensitive), or create the role",
    )


def _not_loaded(evidence: str) -> Finding:
    return Finding(
        "pg_stat_statements",
        "warning",
        "pg_stat_statements is not loaded",
        f"{evidence}; {_EMPTY_WITHOUT_IT}",
        "add pg_stat_statements to shared_preload_libraries, restart, then "
        "CREATE EXTENSION pg_stat_statements;",
    )


def _readable(facts: Facts) -> Finding:
    title = "pg_stat_statements is loaded and installed"
    if facts.reads_all_stats:
        return Finding("pg_stat_statements", "ok", title)
    return Finding(
        "pg_stat_statements",
        "info",
        title,
        f"role {facts.grantee} sees other roles' statement texts as <insufficient privilege>",
        f"{grant(facts.grantee, 'pg_read_all_stats')} (or pg_monitor) to see them all",
    )


def check_pg_stat_statements(facts: Facts) -> Finding:
    preload = facts.settings.get("shared_preload_libraries")
    probe = facts.pg_stat_statements_probe
    if probe == "not_loaded":
        return _not_loaded("reading the view fails: it must be preloaded")
    if preload is not None and "pg_stat_statements" not in [
        lib.strip() for lib in preload.value.split(",")
    ]:
        return _not_loaded("shared_preload_libraries does not list it")
    if probe == "denied":
        return Finding(
            "pg_stat_statements",
            "warning",
            f"role {facts.grantee} may not read pg_stat_statements",
            "the view exists but reading it is denied",
            f"GRANT SELECT ON pg_stat_statements TO {quote_ident(facts.grantee)};",
        )
    if facts.pg_stat_statements_installed:
        return _readable(facts)
    create = "CREATE EXTENSION pg_stat_statements;"
    if preload is not None:
        return Finding(
            "pg_stat_statements",
            "warning",
            f"pg_stat_statements is loaded but not installed in database {facts.datname}",
            "the view is missing, so nothing can read the statistics",
            create,
        )
    # Hidden setting and no view to ask: either could be true; say which grant tells.
    return Finding(
        "pg_stat_statements",
        "warning",
        f"cannot see whether pg_stat_statements is loaded; it is not installed in "
        f"database {facts.datname}",
        f"role {facts.grantee} may not read shared_preload_libraries; {_EMPTY_WITHOUT_IT}",
        f"{create} (the doctor then reads the view to tell whether it is loaded), or "
        f"{grant(facts.grantee, 'pg_read_all_settings')} to show shared_preload_libraries",
    )


def check_long_transactions_visible(facts: Facts, found: Finding) -> Finding:
    """Without pg_read_all_stats, "no long transaction" only covers the role's own sessions."""
    if facts.reads_all_stats:
        return found
    see_all = f"{grant(facts.grantee, 'pg_read_all_stats')} (or pg_monitor) to see every session"
    if found.level == "ok":
        return Finding(
            found.check,
            "info",
            f"{found.title} among role {facts.grantee}'s own sessions",
            "other roles' transactions are hidden from this role, so they were not checked",
            see_all,
        )
    return replace(
        found,
        detail=f"{found.detail} (only role {facts.grantee}'s own sessions are visible)",
        fix=f"{found.fix}; {see_all}",
    )
