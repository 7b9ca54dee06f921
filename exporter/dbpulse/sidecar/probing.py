"""``/probe`` over HTTP: parameters in, (status, body, content type) out; and its rendering.

The status codes are the contract with Prometheus and with people reading a failed
probe: 400 for a malformed request, 404 for a target that is neither configured nor an
allowed DSN, 503 when the process cannot take the target now (connection budget,
unreadable password file), 200 with the target's snapshot otherwise.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric

from dbpulse.http.barecounter import text_encoder
from dbpulse.sidecar.runtime import TargetRuntime

TEXT = "text/plain; charset=utf-8"
ProbeAnswer = tuple[int, bytes, str]
Only = Callable[[str], bool]


def collector_filter(values: list[str], known: set[str]) -> tuple[Only | None, str | None]:
    """(filter, None) for ``collectors=`` values, or (None, the 400 message)."""
    wanted = {name.strip() for value in values for name in value.split(",") if name.strip()}
    if not wanted:
        return None, None
    unknown = sorted(wanted - known)
    if unknown:
        have = ", ".join(sorted(known))
        return None, f"unknown collectors: {', '.join(unknown)}; have: {have}"
    return (lambda name: name.split("@", 1)[0] in wanted), None


def bad_request(message: str) -> ProbeAnswer:
    return 400, message.encode() + b"\n", TEXT


def not_found(message: str) -> ProbeAnswer:
    return 404, f"{message}\n".encode(), TEXT


def unavailable(message: str) -> ProbeAnswer:
    return 503, f"{message}\n".encode(), TEXT


def render(runtime: TargetRuntime, only: Only | None) -> ProbeAnswer:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_View(runtime, only))
    return 200, text_encoder(generate_latest)(registry), CONTENT_TYPE_LATEST


class _View:
    """One probe's output: a target's snapshot, optionally restricted to some collectors."""

    def __init__(self, runtime: TargetRuntime, only: Only | None) -> None:
        self._runtime = runtime
        self._only = only

    def collect(self) -> Iterator[Metric]:
        yield from merge_families(
            [*self._runtime.snapshot.families(self._only), *self._runtime.extra_families()]
        )


def merge_families(families: list[Metric]) -> list[Metric]:
    """One family per name: each discovered database's collector yields the same names,
    and a second HELP/TYPE for a name makes Prometheus reject the whole scrape."""
    merged: dict[str, Metric] = {}
    for family in families:
        seen = merged.get(family.name)
        if seen is None:
            merged[family.name] = family
            continue
        if seen.type != family.type:
            continue  # cannot happen for one collector's families; never corrupt a scrape
        # Snapshot families are shared with other probes: build a new one, never extend.
        # A copy keeps the family's class (a BareCounter must stay one: barecounter.py).
        combined = copy.copy(seen)
        combined.samples = [*seen.samples, *family.samples]
        merged[family.name] = combined
    return list(merged.values())
