"""Serve two fixed bodies from dbpulse's HTTP server: the benchmark's static-file baseline.

    python benchmarks/static_server.py PLAIN_FILE GZIP_FILE PORT

GET /plain answers PLAIN_FILE as text/plain; GET /gzip answers GZIP_FILE with
``Content-Encoding: gzip``. Same server class and settings as ``dbpulse sidecar``'s
/metrics, so the difference to a /metrics scrape is the exposition itself.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "exporter")]

from dbpulse.http.server import serve_wsgi  # noqa: E402 - after the path tweak

TEXT = "text/plain; version=0.0.4; charset=utf-8"


def main(argv: list[str]) -> int:
    plain, packed, port = Path(argv[0]).read_bytes(), Path(argv[1]).read_bytes(), int(argv[2])
    bodies = {
        "/plain": (plain, [("Content-Type", TEXT)]),
        "/gzip": (packed, [("Content-Type", TEXT), ("Content-Encoding", "gzip")]),
    }

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body, headers = bodies.get(environ["PATH_INFO"], (b"", []))
        if not body:
            start_response("404 Not Found", [("Content-Length", "0")])
            return []
        start_response("200 OK", [*headers, ("Content-Length", str(len(body)))])
        return [body]

    server, _ = serve_wsgi("127.0.0.1", port, app)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"serving on 127.0.0.1:{port}", flush=True)
    stop.wait()
    server.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
