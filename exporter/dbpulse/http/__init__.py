"""The HTTP side: /metrics and friends served by cheroot (see ``dbpulse.http.server``)."""

from dbpulse.http.endpoints import Endpoints
from dbpulse.http.server import MetricsServer, serve_metrics, start_server

__all__ = [
    "Endpoints",
    "MetricsServer",
    "serve_metrics",
    "start_server",
]
