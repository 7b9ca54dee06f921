"""The web config and its TLS context, re-read when the file or a file it names changes.

exporter-toolkit re-reads everything at every handshake and request; here a change is
looked for (``os.stat`` of the config, cert, key and client CA) at most once per
``check_every`` seconds, when a connection or request asks, and the files are re-read
only when one changed. A Kubernetes Secret update swaps a symlink, so the stat follows
links and compares inode, size and mtime. A change that does not load (a half-written
key, a typo) keeps the last good config and context and is logged once: a rotation
mistake must not turn the exporter open or off.
"""

from __future__ import annotations

import os
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from dbpulse.http.tlscontext import TLSConfigError, build_context
from dbpulse.http.webconfig import WebConfig, load_web_config
from dbpulse.logging import get_logger
from dbpulse.settings.errors import ConfigError

__all__ = ["WebSource", "WebState"]

Signature = tuple[tuple[int, int, int] | None, ...]


@dataclass(frozen=True)
class WebState:
    config: WebConfig
    context: ssl.SSLContext | None  # None: plain HTTP


def _load(path: Path) -> WebState:
    """Raises ConfigError (one line per problem) for anything that cannot be served."""
    config = load_web_config(path)
    tls = config.tls_server_config
    if not tls.enabled:
        return WebState(config, None)
    try:
        return WebState(config, build_context(tls))
    except TLSConfigError as exc:
        raise ConfigError([("tls_server_config", str(exc))], str(path)) from None


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


class WebSource:
    """The current ``WebState`` of one web config file; ``current()`` is thread-safe."""

    def __init__(self, path: Path, check_every: float = 1.0) -> None:
        self.path = path
        self._check_every = check_every
        self._lock = threading.Lock()
        self._state = _load(path)  # a bad file at start raises: the process exits 2
        self._signature = self._sign(self._state)
        self._checked = time.monotonic()
        self._failed: Signature | None = None
        self.reloads = 0  # successful re-reads since start (tests and logs read it)

    @property
    def tls(self) -> bool:
        return self._state.context is not None

    def _sign(self, state: WebState) -> Signature:
        files = [self.path, *state.config.tls_server_config.files()]
        return tuple(_stat(p) for p in files)

    def current(self) -> WebState:
        now = time.monotonic()
        if now - self._checked < self._check_every:
            return self._state
        with self._lock:
            if now - self._checked >= self._check_every:
                self._checked = now
                self._maybe_reload()
            return self._state

    def _maybe_reload(self) -> None:
        signature = self._sign(self._state)
        if signature in (self._signature, self._failed):
            return
        try:
            state = _load(self.path)
        except ConfigError as exc:
            self._failed = signature
            get_logger().error(
                "web config not reloaded; serving the last good one",
                reason="; ".join(exc.lines()),
            )
            return
        if (state.context is None) != (self._state.context is None):
            # The listening socket speaks TLS or not from start; switching needs a restart.
            self._failed = signature
            get_logger().error("web config not reloaded: turning TLS on or off needs a restart")
            return
        self._state = state
        self._signature = self._sign(state)
        self._failed = None
        self.reloads += 1
        get_logger().info("web config reloaded", file=str(self.path))
