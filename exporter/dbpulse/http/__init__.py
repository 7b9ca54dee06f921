"""The HTTP side: /metrics and friends served by cheroot (see ``dbpulse.http.server``)."""

from dbpulse.http.endpoints import Endpoints, FamilySubset, split_live
from dbpulse.http.server import MetricsServer, serve_metrics, start_server

__all__ = [
    "Endpoints",
    "FamilySubset",
    "MetricsServer",
    "serve_metrics",
    "split_live",
    "start_server",
]
