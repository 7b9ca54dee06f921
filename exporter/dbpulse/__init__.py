"""dbpulse: PostgreSQL and SQLAlchemy observability for Prometheus and OpenTelemetry.

Only the public API lives here; importing this package registers nothing and opens
nothing, so an application can import it at module level safely.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("dbpulse")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

if TYPE_CHECKING:
    from dbpulse.inprocess.health import HealthASGIApp, HealthWSGIApp
    from dbpulse.inprocess.instrumentation import Instrumentation

__all__ = [
    "HealthASGIApp",
    "HealthWSGIApp",
    "Instrumentation",
    "__version__",
    "instrument",
    "query_counter",
    "serve_metrics",
]


def __getattr__(name: str) -> Any:
    # The in-process half pulls in SQLAlchemy; the sidecar should not pay for it.
    if name in {"instrument", "Instrumentation"}:
        from dbpulse.inprocess import instrumentation

        return getattr(instrumentation, name)
    if name in {"HealthASGIApp", "HealthWSGIApp"}:
        from dbpulse.inprocess import health

        return getattr(health, name)
    if name == "query_counter":
        from dbpulse.inprocess.scope import query_counter

        return query_counter
    if name == "serve_metrics":
        from dbpulse.http import serve_metrics

        return serve_metrics
    raise AttributeError(f"module 'dbpulse' has no attribute {name!r}")
