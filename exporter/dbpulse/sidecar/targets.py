"""Bookkeeping for many targets (pure: no I/O, the clock is passed in).

Which DSN a target name means, which databases discovery polls, which collectors are due,
when a target has gone unprobed long enough to drop, and whether a new connection fits
the per-target and global budgets. ``runtime.py``, ``discovery.py`` and ``multitarget.py``
do the I/O around these decisions.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from dbpulse.dsn import target_name
from dbpulse.settings import Settings, TargetSettings
from dbpulse.sidecar.urldsn import RefusedDsn, safe_url_dsn

# Collectors that read the connected database's own catalog; with discovery they run once
# per database. Everything else reads cluster-wide views and runs once per server.
PER_DATABASE = frozenset({"migrations", "regressions", "tables"})


class UnknownTarget(LookupError):
    """A /probe target that is neither configured nor (when allowed) a DSN."""


@dataclass(frozen=True)
class TargetSpec:
    """What a target name resolves to. ``dsn`` may hold a password: never print it."""

    name: str
    dsn: str
    max_connections: int
    discovery: bool
    # A DSN from /probe's URL: drawn from its own connection budget.
    from_url: bool = False


def resolve(
    settings: Settings,
    name: str,
    password: str | None,
    environ: Mapping[str, str] = os.environ,
) -> TargetSpec:
    """The spec for ``/probe?target=name``; raises UnknownTarget with a message to show.

    A DSN in the URL never gets ``password``: it is rebuilt by ``urldsn.safe_url_dsn``.
    """
    for target in settings.targets:
        if target.name == name:
            return TargetSpec(
                name=name,
                dsn=target_dsn(target, settings.dsn_template, password),
                max_connections=target.max_connections,
                discovery=(
                    target.discovery if target.discovery is not None else settings.discovery.enabled
                ),
            )
    if settings.allow_dsn_in_url and _looks_like_dsn(name):
        try:
            dsn = safe_url_dsn(name, settings.dsn_in_url_hosts, environ)
        except RefusedDsn as exc:
            raise UnknownTarget(str(exc)) from None
        return TargetSpec(
            name=target_name(name),
            dsn=dsn,
            max_connections=1,
            discovery=settings.discovery.enabled,
            from_url=True,
        )
    known = ", ".join(sorted(t.name for t in settings.targets)) or "none configured"
    hint = "" if settings.allow_dsn_in_url else " (DSNs in the URL are refused)"
    # The name is echoed only when it cannot be a DSN holding a password.
    shown = "<a DSN>" if _looks_like_dsn(name) else repr(name[:128])
    raise UnknownTarget(f"unknown target {shown}{hint}; configured targets: {known}")


def _looks_like_dsn(text: str) -> bool:
    return "://" in text or "=" in text


def target_dsn(target: TargetSettings, template: str | None, password: str | None) -> str:
    """The target's own DSN, or the template filled with its host/port/dbname."""
    if target.dsn is not None:
        dsn = target.dsn.get_secret_value()
    elif template is not None and target.host is not None:
        dsn = template.format(host=target.host, port=target.port, dbname=target.dbname)
    else:  # settings validation rules this out
        raise UnknownTarget(f"target {target.name!r} has neither dsn nor host + dsn_template")
    if password and "password" not in conninfo_to_dict(dsn):
        dsn = make_conninfo(dsn, password=password)
    return dsn


def database_dsn(dsn: str, dbname: str) -> str:
    """The same server and credentials, another database (for per-database collectors)."""
    return make_conninfo(dsn, dbname=dbname)


def select_databases(
    names: Iterable[str], include: list[str], exclude: list[str], limit: int
) -> tuple[list[str], list[str]]:
    """(polled, skipped): names matching an include and no exclude, first ``limit`` by name."""
    inc = [re.compile(p) for p in include]
    exc = [re.compile(p) for p in exclude]
    matching = sorted(
        n
        for n in set(names)
        if any(p.fullmatch(n) for p in inc) and not any(p.fullmatch(n) for p in exc)
    )
    return matching[:limit], matching[limit:]


class Budget:
    """Connections held by key (a target, or a target's database) under one global cap."""

    def __init__(self, total: int) -> None:
        self.total = total
        self._held: dict[str, int] = {}

    @property
    def used(self) -> int:
        return sum(self._held.values())

    def reserve(self, key: str, count: int) -> bool:
        """Hold ``count`` connections for ``key`` if they fit; idempotent per key."""
        if key in self._held:
            return True
        if self.used + count > self.total:
            return False
        self._held[key] = count
        return True

    def release(self, key: str) -> None:
        self._held.pop(key, None)

    def release_prefix(self, prefix: str) -> None:
        for key in [k for k in self._held if k.startswith(prefix)]:
            del self._held[key]


@dataclass
class Cadence:
    """Which of a lane's collectors are due; the lane's one scheduler job runs what is due.

    One job per lane (a lane per connection, instead of a job per collector) means a
    target occupies at most one worker thread per connection, so a target that hangs in
    connect cannot take the pool from the others. APScheduler times the ticks; this only
    keeps each collector to its own interval within them.
    """

    intervals: dict[str, float]
    next_due: dict[str, float] = field(default_factory=dict)
    last_tick: float | None = None
    lag: float = 0.0

    @property
    def tick(self) -> float:
        return min(self.intervals.values())

    def due(self, now: float) -> list[str]:
        """Names due at ``now`` (never polled counts as due), and note the tick's lateness."""
        if self.last_tick is not None:
            self.lag = max(0.0, now - (self.last_tick + self.tick))
        self.last_tick = now
        return self.ready(now)

    def ready(self, now: float) -> list[str]:
        """Names due at ``now``, without counting a tick (for names added mid-tick)."""
        # Half a second of slack: a tick that fires a hair early must not skip a round.
        return [n for n in self.intervals if self.next_due.get(n, 0.0) <= now + 0.5]

    def ran(self, name: str, started: float) -> None:
        self.next_due[name] = started + self.intervals[name]


class TargetRegistry:
    """When each live target was last probed; which ones have gone idle."""

    def __init__(self, idle_timeout: float) -> None:
        self.idle_timeout = idle_timeout
        self._last_probe: dict[str, float] = {}

    def __contains__(self, name: object) -> bool:
        return name in self._last_probe

    def __len__(self) -> int:
        return len(self._last_probe)

    def names(self) -> list[str]:
        return sorted(self._last_probe)

    def touch(self, name: str, now: float) -> bool:
        """Record a probe; True when the target is new (its poller must be created)."""
        new = name not in self._last_probe
        self._last_probe[name] = now
        return new

    def forget(self, name: str) -> None:
        self._last_probe.pop(name, None)

    def idle(self, now: float) -> list[str]:
        return sorted(n for n, t in self._last_probe.items() if now - t > self.idle_timeout)
