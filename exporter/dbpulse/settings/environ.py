"""``DBPULSE_*`` environment variables that are not settings (pure).

pydantic-settings reads only the variables that name a field, so ``DBPULSE_INTERVALL=3``
would be ignored in silence while ``DBPULSE_COLLECTORS__LOCKS__INTERVALL`` is an error.
Every variable with the prefix must name a setting, like every key of the file, except
those dbpulse itself documents for other purposes and those Kubernetes injects.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

__all__ = ["PREFIX", "unknown_variables"]

PREFIX = "DBPULSE_"

# Read by dbpulse outside the settings: the PostgreSQL the tests start (localpg.py).
NOT_SETTINGS = frozenset({"DBPULSE_PG_BINDIR"})
# The test suite's own knobs (e.g. DBPULSE_TEST_SQL_FUZZ_EXAMPLES): a long fuzz run must
# not turn every sidecar the same suite starts into a configuration error.
TEST_KNOBS = "DBPULSE_TEST_"

# Kubernetes service links: a Service named dbpulse (or dbpulse-*) gives every pod in its
# namespace DBPULSE_SERVICE_HOST, DBPULSE_PORT_9189_TCP_ADDR and the like.
_SERVICE_LINK = re.compile(
    r"^DBPULSE(_[A-Z0-9_]+?)?_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?"
    r"|PORT(_\d+_(TCP|UDP|SCTP)(_(ADDR|PORT|PROTO))?)?)$"
)


def unknown_variables(environ: Mapping[str, str], fields: Iterable[str]) -> list[str]:
    """Names of prefixed variables (matched case-insensitively, as pydantic-settings
    matches them) whose first part names no setting."""
    known = {name.lower() for name in fields}
    found = []
    for name in environ:
        upper = name.upper()
        if (
            not upper.startswith(PREFIX)
            or upper in NOT_SETTINGS
            or upper.startswith(TEST_KNOBS)
            or _SERVICE_LINK.match(upper)
        ):
            continue
        if upper[len(PREFIX) :].split("__", 1)[0].lower() not in known:
            found.append(name)
    return sorted(found)
