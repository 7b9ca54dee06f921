"""A DSN from ``/probe``'s URL, made safe to connect with (pure: no I/O).

Whoever can reach ``/probe`` chooses that DSN, so libpq must not fill its gaps from the
process: ``PGPASSWORD``/``PGPASSFILE``/``.pgpass`` would hand dbpulse's password to any
server the URL names, ``PGSERVICE`` could add a password or a ``hostaddr``, a Unix socket
(``host=/var/run/postgresql``) or ``hostaddr`` reaches servers that trust local
connections, and a client certificate or Kerberos ticket in the environment would log
in on the caller's behalf. So the DSN is read with libpq's own parser, may set only
:data:`ALLOWED_KEYS`, must name TCP hosts matching ``dsn_in_url_hosts``, and is rebuilt
with every other libpq keyword set explicitly to its compiled default (an explicit value
is never replaced from the environment or a service file), no password file, no client
certificate, and only the URL's own password (or none) to authenticate with.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

from psycopg import pq
from psycopg.conninfo import make_conninfo

from dbpulse.dsn_text import parse
from dbpulse.settings.urlhosts import host_allowed

__all__ = ["ALLOWED_KEYS", "RefusedDsn", "safe_url_dsn"]

ALLOWED_KEYS = ("host", "port", "dbname", "user", "password", "sslmode")
DEFAULT_PORT = "5432"
# ENOTDIR: libpq goes on without a client certificate or password file (any libpq
# version), where an empty value would fall back to ~/.postgresql/ or ~/.pgpass.
NO_FILE = "/dev/null/dbpulse-none"
# The URL's own password, or none at all (trust). Not gss/sspi: the process's ticket.
REQUIRE_AUTH = "password,md5,scram-sha-256,none"
# Set per connection by dbpulse itself (connection.py), or harmless labels.
_OURS = frozenset(
    {
        "connect_timeout",
        "application_name",
        "fallback_application_name",
        "keepalives",
        "keepalives_idle",
        "keepalives_interval",
        "keepalives_count",
        "tcp_user_timeout",
    }
)
_FORCED = {
    "passfile": NO_FILE,
    "sslcert": NO_FILE,
    "sslkey": NO_FILE,
    "sslcertmode": "disable",
    "sslpassword": "",
    "sslkeylogfile": "",
    "gssencmode": "disable",
    "gssdelegation": "0",
    "require_auth": REQUIRE_AUTH,
    "replication": "",
}
# Keywords libpq rejects empty. An empty service is looked up (and not found); the SCRAM
# keys are credentials only a service file could supply, so with PGSERVICE set in the
# environment URL DSNs are refused outright (``safe_url_dsn``).
_NEVER_SET = frozenset(
    {
        "service",
        "min_protocol_version",
        "max_protocol_version",
        "scram_client_key",
        "scram_server_key",
    }
)


class RefusedDsn(ValueError):
    """A URL DSN dbpulse will not connect with; the message never quotes the DSN."""


@cache
def _libpq_defaults() -> dict[str, str]:
    """Every keyword this libpq knows, with its compiled (never environment) default."""
    found = {}
    for option in pq.Conninfo.get_defaults():
        key = option.keyword.decode()
        found[key] = option.compiled.decode() if option.compiled is not None else ""
    return found


def _pairs(parts: dict[str, str]) -> list[tuple[str, str]]:
    hosts = parts.get("host", "").split(",")
    ports = (parts.get("port") or DEFAULT_PORT).split(",")
    if len(ports) == 1:
        ports = ports * len(hosts)
    if len(ports) != len(hosts):
        raise RefusedDsn("DSN in the URL refused: hosts and ports do not pair up")
    return [(h, p or DEFAULT_PORT) for h, p in zip(hosts, ports, strict=True)]


def safe_url_dsn(text: str, patterns: list[str], environ: Mapping[str, str]) -> str:
    """The conninfo to connect with for ``/probe?target=<text>``; raises RefusedDsn."""
    if environ.get("PGSERVICE"):
        raise RefusedDsn("DSN in the URL refused: PGSERVICE is set in dbpulse's environment")
    parts = parse(text)
    if parts is None:
        raise RefusedDsn("DSN in the URL refused: libpq cannot read it unambiguously")
    extra = sorted(set(parts) - set(ALLOWED_KEYS))
    if extra:
        raise RefusedDsn(
            f"DSN in the URL refused: it may set only {', '.join(ALLOWED_KEYS)}; "
            f"not {', '.join(extra)}"
        )
    if not parts.get("user"):
        raise RefusedDsn("DSN in the URL refused: it must name a user")
    pairs = _pairs(parts)
    for host, _port in pairs:
        if not host or host.startswith(("/", "@")) or host[1:2] == ":":
            raise RefusedDsn("DSN in the URL refused: Unix sockets are never used for it")
    if not patterns:
        raise RefusedDsn("DSN in the URL refused: dsn_in_url_hosts is empty")
    if not all(host_allowed(h, p, patterns) for h, p in pairs):
        raise RefusedDsn("DSN in the URL refused: host not in dsn_in_url_hosts")
    known = _libpq_defaults()
    explicit = {k: v for k, v in known.items() if k not in _OURS and k not in _NEVER_SET}
    explicit.update({k: v for k, v in _FORCED.items() if k in known})
    explicit.update(
        host=",".join(h for h, _ in pairs),
        port=",".join(p for _, p in pairs),
        user=parts["user"],
        dbname=parts.get("dbname") or parts["user"],
        password=parts.get("password", ""),
        sslmode=parts.get("sslmode") or known.get("sslmode", "prefer"),
    )
    return make_conninfo("", **explicit)
