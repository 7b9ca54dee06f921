"""``dbpulse doctor``: exit 0 when healthy, 1 on an error-level finding, 2 when it cannot run."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TextIO

from dbpulse.doctor.checks import LONG_TRANSACTION_SECONDS, exit_code, run_checks
from dbpulse.doctor.facts import PoolPlan
from dbpulse.doctor.fetch import DoctorError, fetch_facts
from dbpulse.doctor.render import write_json, write_table
from dbpulse.settings import ConfigError

EXIT_UNUSABLE = 2


def pool_plan(args: argparse.Namespace) -> PoolPlan | None:
    """The pool flags as a plan; None when no --pool-size was given."""
    extras = [args.max_overflow, args.workers, args.replicas]
    if args.pool_size is None:
        if any(value is not None for value in extras):
            raise ConfigError(
                [("--pool-size", "required with --max-overflow, --workers or --replicas")]
            )
        return None
    return PoolPlan(
        pool_size=args.pool_size,
        # SQLAlchemy's own default overflow; say so by defaulting the same way.
        max_overflow=10 if args.max_overflow is None else args.max_overflow,
        workers=args.workers or 1,
        replicas=args.replicas or 1,
    )


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    stream = out if out is not None else sys.stdout
    dsn = args.dsn or os.environ.get("DBPULSE_DSN")
    if not dsn:
        raise ConfigError([("dsn", "required: pass --dsn or set DBPULSE_DSN")])
    plan = pool_plan(args)
    threshold = args.long_transaction_seconds or LONG_TRANSACTION_SECONDS
    try:
        facts = fetch_facts(
            dsn,
            role=args.role,
            long_transaction_seconds=threshold,
            explain_top=getattr(args, "explain_top", 10),
        )
    except DoctorError as exc:
        print(f"dbpulse doctor: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    findings = run_checks(facts, plan, threshold)
    code = exit_code(findings)
    fmt = args.format or ("table" if stream.isatty() else "json")
    if fmt == "json":
        write_json(stream, facts, findings, code)
    else:
        write_table(stream, facts, findings, code, color=stream.isatty())
    return code
