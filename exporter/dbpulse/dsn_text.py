"""Finding DSNs and passwords inside free text, deciding every extent with libpq (pure).

Text is only scanned for where a DSN might start (``postgresql://``, ``password``);
how far it reaches is then decided by asking libpq's parser which reading is valid,
so the redacted extent is the one libpq itself would have used as the password.
"""

from __future__ import annotations

from urllib.parse import unquote

from psycopg.conninfo import conninfo_to_dict

REDACTED = "***"
UNPARSEABLE = "<unparseable dsn>"
URI_PREFIXES = ("postgresql://", "postgres://")
# Punctuation a DSN quoted in prose may end with: tried off the end before giving up.
_TRAILING = "'\"),;]>}."
# How many whitespace-separated extents to try for one key=value password.
_MAX_EXTENTS = 64


def _libpq(dsn: str) -> dict[str, str] | None:
    try:
        return {k: str(v) for k, v in conninfo_to_dict(dsn).items()}
    except Exception:  # noqa: BLE001 - libpq says no: callers treat it as unreadable
        return None


def _stray_at(uri: str) -> bool:
    """An '@' libpq did not take as the end of user:password, before any query.

    libpq takes user:password only up to an '@' that comes before the first '/'. Any
    other '@' means a password holding '@' or '/' was read as host, port or database,
    where naming or printing it would leak it.
    """
    rest = uri.split("://", 1)[1]
    at, slash = rest.find("@"), rest.find("/")
    if at >= 0 and (slash < 0 or at < slash):
        rest = rest[at + 1 :]
    return "@" in rest.split("?", 1)[0]


def parse(dsn: str) -> dict[str, str] | None:
    """libpq's reading of ``dsn``, or None when it cannot be read unambiguously."""
    parts = _libpq(dsn)
    if parts is None:
        return None
    if dsn.startswith(URI_PREFIXES) and _stray_at(dsn):
        return None
    # A port that is not a number is, in practice, a password fragment after an
    # unencoded ':' (and libpq could not connect with it anyway).
    if any(p and not p.isdigit() for p in parts.get("port", "").split(",")):
        return None
    return parts


def _without_password(uri: str) -> str:
    """A URI libpq parsed unambiguously, its password (userinfo or query) replaced."""
    scheme, rest = uri.split("://", 1)
    at, slash = rest.find("@"), rest.find("/")
    if at >= 0 and (slash < 0 or at < slash):  # libpq's rule: '@' before any '/'
        userinfo, rest = rest[:at], rest[at:]
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":" + REDACTED
        rest = userinfo + rest
    if "?" in rest:
        head, query = rest.split("?", 1)
        params = [
            "password=" + REDACTED if unquote(p.split("=", 1)[0]) == "password" else p
            for p in query.split("&")
        ]
        rest = head + "?" + "&".join(params)
    return f"{scheme}://{rest}"


def _scrub_uri(token: str) -> str:
    cut = len(token)
    while cut > 0:
        parts = parse(token[:cut])
        if parts is not None:
            core = token[:cut]
            return (_without_password(core) if "password" in parts else core) + token[cut:]
        if token[cut - 1] not in _TRAILING:
            break
        cut -= 1
    return UNPARSEABLE


def _next_uri(text: str, pos: int) -> int:
    found = [i for i in (text.find(p, pos) for p in URI_PREFIXES) if i >= 0]
    return min(found) if found else -1


def scrub_uris(text: str) -> str:
    """Every ``postgresql://`` DSN in ``text``: password out, or wholly out if unreadable."""
    out: list[str] = []
    pos = 0
    while (start := _next_uri(text, pos)) >= 0:
        end = start
        while end < len(text) and not text[end].isspace():
            end += 1
        out += [text[pos:start], _scrub_uri(text[start:end])]
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _value_end(text: str, eq: int) -> int:
    """Where libpq would end the value of ``password=`` whose '=' is at ``eq``.

    The longest whitespace-bounded extent libpq reads as a lone password wins (a
    backslash-escaped space continues the value; a quoted value may hold spaces). An
    extent libpq never accepts (an unterminated quote) redacts the rest of the text.
    """
    rest = text[eq + 1 :]
    bounds = [
        k for k in range(len(rest)) if rest[k].isspace() and (k == 0 or not rest[k - 1].isspace())
    ]
    best = -1
    for k in [*bounds, len(rest)][:_MAX_EXTENTS]:
        parts = _libpq("password=" + rest[:k])
        if parts is not None and set(parts) == {"password"}:
            best = k
        elif best >= 0:
            break
    return len(text) if best < 0 else eq + 1 + best


def scrub_keyvalue(text: str) -> str:
    """Every ``password = value`` in key=value form, with the extent libpq would read."""
    lower = text.lower()
    out: list[str] = []
    pos = 0
    while (i := lower.find("password", pos)) >= 0:
        eq = i + len("password")
        while eq < len(text) and text[eq].isspace():
            eq += 1
        # ?password= and &password= belong to a URI, which scrub_uris already handled.
        if eq >= len(text) or text[eq] != "=" or (i > 0 and text[i - 1] in "?&"):
            out.append(text[pos : i + len("password")])
            pos = i + len("password")
            continue
        out += [text[pos:i], text[i : i + len("password")], "=", REDACTED]
        pos = _value_end(text, eq)
    out.append(text[pos:])
    return "".join(out)


def quoted_fragments(text: str, sources: list[str]) -> list[tuple[int, int]]:
    """(start, end) of each double-quoted piece of one of ``sources`` inside ``text``.

    libpq's parse errors quote part of the DSN back. The piece may itself hold '"' (a
    password can), so each one is the longest run after a '"' that is still a piece of a
    source and is followed by a closing '"'.
    """
    spans: list[tuple[int, int]] = []
    pos = 0
    while (quote := text.find('"', pos)) >= 0:
        start = best = quote + 1
        for source in sources:
            end = start
            while end < len(text) and text[start : end + 1] in source:
                end += 1
                if end < len(text) and text[end] == '"':
                    best = max(best, end)
        if best > start + 1:
            spans.append((start, best))
        pos = best + 1 if best > start else start
    return spans
