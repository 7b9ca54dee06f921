"""``listen = HOST:PORT``: split and checked, pure."""

from __future__ import annotations

import ipaddress

__all__ = ["parse_listen"]


def parse_listen(value: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[::1]:9189`` for IPv6) and check both parts."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError("must be HOST:PORT, e.g. 0.0.0.0:9189")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError("port must be between 0 and 65535")
    host = host.strip("[]") or "0.0.0.0"  # noqa: S104 - binding all interfaces is the sidecar's job
    if not host.replace("-", "").replace(".", "").isalnum():
        try:
            ipaddress.ip_address(host)
        except ValueError as exc:
            raise ValueError(f"{host!r} is not a host name or address") from exc
    return host, port
