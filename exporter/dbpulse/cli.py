"""The thin command line: parse, load settings, hand over. No tracebacks for user errors."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from dbpulse import __version__
from dbpulse.logging import configure_logging
from dbpulse.settings import ConfigError, Settings, load_settings, read_yaml

EXIT_USAGE = 2

Command = Callable[[argparse.Namespace], int]


def _add_sidecar(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("sidecar", help="poll PostgreSQL and serve /metrics")
    p.add_argument("--dsn", help="connection string (or DBPULSE_DSN)")
    p.add_argument("--listen", help="HOST:PORT to serve on (default 0.0.0.0:9189)")
    p.add_argument("--interval", type=float, help="seconds between polls (default 15)")
    p.add_argument("--config", type=Path, help="YAML settings file")
    p.add_argument(
        "--web.config.file",
        dest="web_config_file",
        type=Path,
        help="TLS and basic auth: Prometheus exporter-toolkit's web config YAML",
    )
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    p.add_argument("--log-format", choices=["auto", "json", "console"])
    p.set_defaults(func=_cmd_sidecar)


def _add_check_config(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("check-config", help="validate a YAML settings file")
    p.add_argument("file", type=Path)
    p.set_defaults(func=_cmd_check_config)


def _add_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo", help="throwaway PostgreSQL + sidecar + instrumented app + a troublesome workload"
    )
    p.add_argument("--listen", default="127.0.0.1:9189", help="sidecar HOST:PORT")
    p.add_argument("--app-listen", default="127.0.0.1:9190", help="demo app metrics HOST:PORT")
    p.add_argument("--cycles", type=int, default=0, help="workload cycles; 0 runs until Ctrl-C")
    p.add_argument("--interval", type=float, default=1.0, help="sidecar poll interval, seconds")
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    from dbpulse.demo.runner import DemoOptions, run_demo

    configure_logging("warning", "console")
    options = DemoOptions(
        listen=args.listen, app_listen=args.app_listen, cycles=args.cycles, interval=args.interval
    )
    return run_demo(options)


def _settings_from(args: argparse.Namespace) -> Settings:
    return load_settings(
        args.config,
        dsn=args.dsn,
        listen=args.listen,
        web_config_file=getattr(args, "web_config_file", None),
        interval=args.interval,
        log_level=args.log_level,
        log_format=args.log_format,
    )


def _cmd_sidecar(args: argparse.Namespace) -> int:
    from dbpulse.sidecar.daemon import run_sidecar

    settings = _settings_from(args)
    if settings.dsn is None and not settings.targets:
        raise ConfigError(
            [("dsn", "required: pass --dsn, set DBPULSE_DSN or dsn: in --config (or targets:)")]
        )
    configure_logging(settings.log_level, settings.log_format)
    return run_sidecar(settings)


def _cmd_check_config(args: argparse.Namespace) -> int:
    settings = load_settings(args.file)
    print(f"{args.file}: ok")
    # Valid is not the same as useful: say what an empty or DSN-less file leaves open
    # (still exit 0: the DSN often comes from a Secret, as DBPULSE_DSN, not the file).
    if not read_yaml(args.file):
        print(
            f"{args.file}: note: sets nothing; every setting keeps its default "
            f"(listen {settings.listen}, interval {settings.interval:g} s, all collectors)"
        )
    if settings.dsn is None and not settings.targets:
        print(
            f"{args.file}: note: no dsn and no targets: `dbpulse sidecar` also needs "
            "--dsn or DBPULSE_DSN"
        )
    return 0


def _count(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"must be between 0 and 86400 seconds, got {text}")
    return value


def _add_doctor(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "doctor", help="check a database and pool sizing; exit 1 on errors (deploy gate)"
    )
    p.add_argument("--dsn", help="connection string (or DBPULSE_DSN)")
    p.add_argument("--role", help="application role to check timeouts for (default: DSN user)")
    p.add_argument("--pool-size", type=_count(1), help="SQLAlchemy pool_size per process")
    p.add_argument("--max-overflow", type=_count(0), help="SQLAlchemy max_overflow (default 10)")
    p.add_argument("--workers", type=_count(1), help="processes per replica (default 1)")
    p.add_argument("--replicas", type=_count(1), help="replicas of the service (default 1)")
    p.add_argument(
        "--long-transaction-seconds", type=_seconds, help="report transactions open longer"
    )
    p.add_argument(
        "--explain-top",
        type=_count(0),
        default=10,
        help="plan the top N statements and report advice (0: off; default 10)",
    )
    p.add_argument(
        "--format", choices=["table", "json"], help="default: table on a terminal, else JSON"
    )
    p.set_defaults(func=_cmd_doctor)


def _cmd_doctor(args: argparse.Namespace) -> int:
    from dbpulse.doctor.command import run

    return run(args)


def _add_watch(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "watch-migration", help="follow index builds, lock waits and backfill probes live"
    )
    p.add_argument("--dsn", help="connection string (or DBPULSE_DSN, or dsn: in --config)")
    p.add_argument("--config", type=Path, help="YAML settings file whose probes: are shown")
    p.add_argument("--interval", type=_seconds, default=1.0, help="seconds between refreshes")
    p.add_argument(
        "--wait", type=_seconds, help="seconds to wait for a migration to start (default: none)"
    )
    p.add_argument(
        "--application-name",
        help="follow the migration's backends by application_name; end when they disconnect",
    )
    p.add_argument(
        "--pid",
        type=_count(1),
        action="append",
        help="follow this backend (repeatable); end when it disconnects",
    )
    p.add_argument(
        "--quiet-seconds",
        type=_seconds,
        default=3.0,
        help="without a command or pid: end after nothing was in flight (or, with "
        "--application-name, no backend was connected) for this long (default 3)",
    )
    p.add_argument(
        "migration_command",
        nargs=argparse.REMAINDER,
        metavar="-- COMMAND",
        help="run the migration (e.g. -- alembic upgrade head); exit with its status",
    )
    p.set_defaults(func=_cmd_watch)


def _cmd_watch(args: argparse.Namespace) -> int:
    from dbpulse.watch.command import run

    return run(args)


def _add_lint(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "lint-migrations",
        help="flag migrations that lock or rewrite tables; --roundtrip tests downgrades",
    )
    p.add_argument("paths", nargs="*", type=Path, help="SQL files or directories of them")
    p.add_argument("--alembic", type=Path, metavar="INI", help="lint an Alembic project")
    p.add_argument(
        "--range", default="base:heads", help="Alembic revision range (default base:heads)"
    )
    p.add_argument("--python", help="the project's Python (where Alembic and its models import)")
    p.add_argument("--dsn", help="optional: real table sizes, column types and server version")
    p.add_argument("--pg-version", type=_count(9), help="server major version when no --dsn")
    p.add_argument(
        "--small-table-rows",
        type=_count(0),
        default=10_000,
        help="with --dsn: rewrites of tables this small are info (default 10000 rows)",
    )
    p.add_argument(
        "--assume-in-transaction",
        action="store_true",
        help="SQL files run inside a transaction (the tool applying them wraps each)",
    )
    p.add_argument("--format", choices=["table", "json", "github"])
    p.add_argument(
        "--roundtrip",
        action="store_true",
        help="upgrade, downgrade step by step, upgrade again on a throwaway database",
    )
    p.add_argument("--list-rules", action="store_true", help="print the rules and exit")
    p.set_defaults(func=_cmd_lint)


def _cmd_lint(args: argparse.Namespace) -> int:
    from dbpulse.migrationlint.command import run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dbpulse", description="PostgreSQL and SQLAlchemy observability for Prometheus"
    )
    parser.add_argument("--version", action="version", version=f"dbpulse {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_sidecar(sub)
    _add_check_config(sub)
    _add_demo(sub)
    _add_doctor(sub)
    _add_watch(sub)
    _add_lint(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Command = args.func
    try:
        return func(args)
    except ConfigError as exc:
        for line in exc.lines():
            print(f"dbpulse: config error: {line}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
