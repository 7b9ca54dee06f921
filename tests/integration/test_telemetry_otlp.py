"""End to end over real OTLP: the sidecar's spans reach a receiver this test runs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
import psycopg
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from dbpulse.settings import load_settings
from dbpulse.sidecar.daemon import Sidecar
from tests.integration.collector_helpers import background, wait_for

SECRET = "secret-literal-42"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


@dataclass
class Received:
    requests: list[trace_service_pb2.ExportTraceServiceRequest] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)

    def spans(self) -> list[tuple[dict[str, Any], Any]]:
        """(resource attributes, span) for every span received."""
        found: list[tuple[dict[str, Any], Any]] = []
        for request in self.requests:
            for rs in request.resource_spans:
                resource = {a.key: a.value.string_value for a in rs.resource.attributes}
                for ss in rs.scope_spans:
                    found.extend((resource, span) for span in ss.spans)
        return found


@pytest.fixture
def http_receiver() -> Iterator[tuple[str, Received]]:
    """An OTLP/HTTP endpoint: POST /v1/traces, protobuf body, decoded and kept."""
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.path != "/v1/traces":
                self.send_response(404)
                self.end_headers()
                return
            request = trace_service_pb2.ExportTraceServiceRequest()
            request.ParseFromString(body)
            received.requests.append(request)
            received.bodies.append(body)
            received.headers.append({k.lower(): v for k, v in self.headers.items()})
            reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def grpc_receiver() -> Iterator[tuple[str, Received]]:
    """An OTLP/gRPC endpoint (TraceService.Export) on a free port."""
    received = Received()

    class Service(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request: Any, context: Any) -> Any:
            received.requests.append(request)
            received.bodies.append(request.SerializeToString())
            received.headers.append(dict(context.invocation_metadata()))
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    # Generated gRPC code carries no annotations.
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"http://127.0.0.1:{port}", received
    finally:
        server.stop(grace=None)


# When the statement's backend went idle: the statement's end, by the server's clock.
_ENDED_NS = "SELECT (extract(epoch FROM state_change) * 1000000000)::bigint FROM pg_stat_activity WHERE pid = %s"


def _run_sidecar(fresh_db: str, protocol: str, endpoint: str) -> int:
    """A sidecar (activity only) sees a commented slow query, then closes (flushing).

    Returns when the statement ended (ns since the epoch).
    """
    off = {"enabled": False}
    settings = load_settings(
        dsn=fresh_db,
        collectors=dict.fromkeys(
            ("statements", "locks", "progress", "database", "migrations"), off
        ),
        telemetry={
            "enabled": True,
            "protocol": protocol,
            "endpoint": endpoint,
            "headers": {"x-api-key": "k-123"},
            "service_name": "dbpulse-e2e",
            "slow_query_seconds": 0.3,
        },
    )
    sidecar = Sidecar.build(settings)
    try:
        sql = f"/*traceparent='00-{TRACE}-{PARENT}-01'*/ SELECT pg_sleep(0.8), '{SECRET}'"
        with background(fresh_db, sql) as job:

            def done() -> bool:
                sidecar.poller.run_once("slow_queries")
                return job.done()

            wait_for(done, timeout=30)
            sidecar.poller.run_once("slow_queries")
            with psycopg.connect(fresh_db, autocommit=True) as admin:
                row = admin.execute(_ENDED_NS, (job.pid,)).fetchone()
            assert row is not None
            ended_ns: int = row[0]
    finally:
        sidecar.close()
    return ended_ns


def _check(received: Received, ended_ns: int) -> None:
    spans = received.spans()
    assert len(spans) == 1
    resource, span = spans[0]
    assert resource["service.name"] == "dbpulse-e2e"
    assert resource["host.name"]
    assert span.name == "SELECT"
    assert span.trace_id.hex() == TRACE
    assert span.parent_span_id.hex() == PARENT
    assert span.end_time_unix_nano - span.start_time_unix_nano >= 0.3e9
    # It ends at the last poll that saw the statement running, so never after the statement
    # (a bound from the server's record, not from how fast this machine ran pg_sleep).
    assert span.end_time_unix_nano <= ended_ns, (span.end_time_unix_nano, ended_ns)
    attrs = {a.key: a.value for a in span.attributes}
    assert attrs["db.query.text"].string_value == "SELECT pg_sleep(?), ?"
    assert attrs["db.system.name"].string_value == "postgresql"
    assert received.headers[0]["x-api-key"] == "k-123"
    assert all(SECRET.encode() not in body for body in received.bodies)


def test_sidecar_spans_arrive_over_otlp_http(
    fresh_db: str, http_receiver: tuple[str, Received]
) -> None:
    """http/protobuf: the slow-query span, its parent, resource and header reach /v1/traces, no literal."""
    endpoint, received = http_receiver
    ended_ns = _run_sidecar(fresh_db, "http/protobuf", endpoint)
    _check(received, ended_ns)


def test_sidecar_spans_arrive_over_otlp_grpc(
    fresh_db: str, grpc_receiver: tuple[str, Received]
) -> None:
    """grpc: the same span arrives through TraceService.Export."""
    endpoint, received = grpc_receiver
    ended_ns = _run_sidecar(fresh_db, "grpc", endpoint)
    _check(received, ended_ns)
