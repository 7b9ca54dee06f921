"""WSGI middleware for the web config: rate limit, response headers, basic auth (bcrypt).

As exporter-toolkit's handler: a request over the rate limit gets 429; configured
headers go on every answer; with ``basic_auth_users`` set, a request without a valid
user and password gets 401 with ``WWW-Authenticate: Basic``. An unknown user is checked
against a fixed hash, so timing does not tell which users exist; checks are cached
(a bcrypt check costs tens of milliseconds) and run one at a time, so a flood of
guesses costs one core at most.

Unlike exporter-toolkit, ``/healthz`` and ``/readyz`` are open and not rate limited:
kubelet probes carry no credentials, and they reveal only "up" and a readiness reason.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import bcrypt

from dbpulse.http.app import StartResponse, WSGIApp
from dbpulse.http.webconfig import RateLimit
from dbpulse.http.webreload import WebSource

__all__ = ["OPEN_PATHS", "Guard"]

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
# bcrypt("not a user password", cost 10): checked for unknown users, to spend the same time.
_DECOY = b"$2b$10$4c7yveQ9qzE3E463Bfq3ze8ZsAcOkMsvPuKg21smmcU4G2cvmIu0a"
_CACHE_SIZE = 256


class _Bucket:
    """A token bucket: ``burst`` requests at once, one more every ``interval`` seconds."""

    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self._tokens = float(max(limit.burst, 1))
        self._at = time.monotonic()
        self._lock = threading.Lock()

    def allow(self) -> bool:
        with self._lock:
            now = time.monotonic()
            cap = float(max(self.limit.burst, 1))
            self._tokens = min(cap, self._tokens + (now - self._at) / self.limit.interval)
            self._at = now
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            return False


def _credentials(header: str) -> tuple[str, str] | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


class Guard:
    """Wraps ``app``; reads the current web config from ``source`` at each request."""

    def __init__(self, app: WSGIApp, source: WebSource) -> None:
        self._app = app
        self._source = source
        self._bucket: _Bucket | None = None
        self._bcrypt_lock = threading.Lock()
        self._cache: OrderedDict[bytes, bool] = OrderedDict()
        self._cache_lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        config = self._source.current().config
        headers = list(config.http_server_config.headers.items())

        def respond(status: str, response_headers: list[tuple[str, str]], *exc: Any) -> Any:
            return start_response(status, [*response_headers, *headers], *exc)

        path = environ.get("PATH_INFO", "")
        if path in OPEN_PATHS:  # a kubelet probe answered 429 or 401 would restart the pod
            return self._app(environ, respond)
        if not self._allowed(config.rate_limit):
            return _plain(respond, "429 Too Many Requests", [])
        users = config.basic_auth_users
        if users and path not in config.basic_auth_excluded_paths:
            given = _credentials(environ.get("HTTP_AUTHORIZATION", ""))
            if given is None or not self._valid(users, *given):
                return _plain(respond, "401 Unauthorized", [("WWW-Authenticate", "Basic")])
        return self._app(environ, respond)

    def _allowed(self, limit: RateLimit) -> bool:
        if limit.interval <= 0:
            return True
        if self._bucket is None or self._bucket.limit != limit:
            self._bucket = _Bucket(limit)
        return self._bucket.allow()

    def _valid(self, users: dict[str, str], user: str, password: str) -> bool:
        hashed = users.get(user)
        target = hashed.encode() if hashed is not None else _DECOY
        # Keyed by a digest: the cache never holds a password in the clear.
        key = hashlib.sha256(b"\0".join((user.encode(), target, password.encode()))).digest()
        with self._cache_lock:
            cached = self._cache.get(key)
        if cached is None:
            with self._bcrypt_lock:
                cached = _checkpw(password.encode(), target)
            with self._cache_lock:
                self._cache[key] = cached
                while len(self._cache) > _CACHE_SIZE:
                    self._cache.popitem(last=False)
        return cached and hashed is not None


def _checkpw(password: bytes, hashed: bytes) -> bool:
    # pyca/bcrypt knows $2a$/$2b$/$2y$; Go's $2x$ and bare $2$ read the same as $2a$.
    if hashed.startswith((b"$2x$", b"$2$")):
        hashed = b"$2a$" + hashed.split(b"$", 2)[2]
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:  # over 72 bytes (Go refuses those too), or a hash bcrypt rejects
        return False


def _plain(respond: StartResponse, status: str, extra: list[tuple[str, str]]) -> list[bytes]:
    body = status.split(" ", 1)[1].encode() + b"\n"
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
    respond(status, [*headers, *extra])
    return [body]
