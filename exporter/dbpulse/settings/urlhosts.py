"""``dsn_in_url_hosts`` patterns: which TCP hosts a ``/probe`` DSN may name (pure).

A pattern is ``host``, ``host:port``, ``[v6addr]`` or ``[v6addr]:port``; the host is a
shell-style glob matched case-insensitively (``db-*.internal``), the port a number or
``*``; no port means any port. Socket paths are never a pattern. A loopback host
(``localhost``, 127.0.0.0/8, ::1) matches only a pattern naming it without a glob: local
servers often trust local connections, so ``*`` must not reach them by accident.
"""

from __future__ import annotations

import fnmatch
import ipaddress

__all__ = ["check_pattern", "host_allowed"]


def _split_pattern(pattern: str) -> tuple[str, str]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` into (host, port or '*')."""
    if pattern.startswith("["):
        host, _, rest = pattern[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") else "*"
    if pattern.count(":") == 1:
        host, port = pattern.split(":")
        return host, port
    return pattern, "*"


def check_pattern(pattern: str) -> str:
    """A valid dsn_in_url_hosts pattern, or ValueError saying what is wrong."""
    host, port = _split_pattern(pattern)
    if not host or host.startswith(("/", "@")):
        raise ValueError(f"{pattern!r}: needs a host name or address (sockets are refused)")
    if port != "*" and not (port.isdigit() and 0 < int(port) <= 65535):
        raise ValueError(f"{pattern!r}: the port must be a number or *")
    return pattern


def _loopback(host: str) -> bool:
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_allowed(host: str, port: str, patterns: list[str]) -> bool:
    """Whether TCP ``host:port`` matches a pattern (glob on the host, case-insensitive)."""
    local = _loopback(host)
    for pattern in patterns:
        want_host, want_port = _split_pattern(pattern)
        if local and any(c in want_host for c in "*?["):
            continue
        if fnmatch.fnmatchcase(host.lower(), want_host.lower()) and want_port in ("*", port):
            return True
    return False
