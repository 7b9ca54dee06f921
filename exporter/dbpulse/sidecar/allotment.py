"""One target's series budget split among its discovered databases (pure).

A per-database collector with a target-wide budget (``top_n`` items, ``max_series``
series: the tables collector) runs once per database, each on its own poller at its own
moment, so no single poll can rank every database's tables together. Instead each build
reports what its database *wants* (``Wants``: the items and series it would export with
the whole budget to itself), the runtime keeps it in the collector's state, and before a
database's next poll discovery splits the target's budget by the latest wants of all
its databases (``split``), handing the database its ``Allotment`` in the poll's context.

The split is max-min fair ("water-filling"): a database that wants less than an equal
share gets what it wants, the others share the rest equally; series nobody wants are
then shared equally by the databases that want any, so each has room to hold recently
exported items. A database not polled yet wants everything (the first round is an equal
split). The allotments never add up to more than the target's budget, so a target's
series stay within ``max_series`` however many databases and tables it has; a database
whose wants grow gets more from its next poll after the others' next polls.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dbpulse.sidecar.base import Allotment


@dataclass(frozen=True)
class Wants:
    """What one database would export with the target's whole budget to itself."""

    items: int
    series: int


def water_fill(total: int, wants: Sequence[int]) -> list[int]:
    """Max-min fair integer split of ``total``: nobody gets more than it wants (pure)."""
    given = [0] * len(wants)
    remaining = total
    order = sorted(range(len(wants)), key=lambda i: wants[i])
    for position, index in enumerate(order):
        fair = remaining // (len(wants) - position)
        given[index] = min(max(0, wants[index]), fair)
        remaining -= given[index]
    return given


def split(top_n: int, max_series: int, wants: Mapping[str, Wants | None]) -> dict[str, Allotment]:
    """Each database's part of the target's ``top_n`` and ``max_series`` (pure)."""
    names = sorted(wants)
    full = Wants(items=top_n, series=max_series)
    known = [wants[name] or full for name in names]
    items = water_fill(top_n, [w.items for w in known])
    series = water_fill(max_series, [w.series for w in known])
    # Series nobody asked for go to the databases that want some: room for held items.
    takers = [i for i, w in enumerate(known) if w.series > 0] or list(range(len(names)))
    spare = max_series - sum(series)
    for rank, index in enumerate(takers):
        series[index] += spare // len(takers) + (1 if rank < spare % len(takers) else 0)
    return {name: Allotment(top_n=items[i], max_series=series[i]) for i, name in enumerate(names)}
