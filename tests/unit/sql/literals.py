"""Hypothesis strategies: PostgreSQL constants and comments of every syntax, each carrying a marker.

Every generated constant or comment holds ``MARK`` (letters) or a long digit run, and
the code around them never does, so a marker in any output is a leaked literal.
"""

from __future__ import annotations

from hypothesis import strategies as st

MARK = "qzx"  # never in CODE below; lower-case so case-folding outputs still show it
_TEXT = st.lists(
    st.characters(codec="utf-8", exclude_characters="\x00")
    | st.sampled_from(["'", "''", "\\", "\\'", "$", "$$", "--", "/*", "*/", '"', "\n", "E'"]),
    max_size=8,
).map("".join)


@st.composite
def secret(draw: st.DrawFn) -> str:
    """Arbitrary text with the marker in the middle (quotes, backslashes, comment starts too)."""
    return draw(_TEXT) + MARK + draw(_TEXT)


def _standard(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


@st.composite
def escape_string(draw: st.DrawFn) -> str:
    """E'..' with backslash escapes; a quote doubled or backslashed."""
    s = draw(secret())
    quote = draw(st.sampled_from(["''", "\\'"]))
    prefix = draw(st.sampled_from(["E", "e"]))
    return prefix + "'" + s.replace("\\", "\\\\").replace("'", quote) + "'"


@st.composite
def unicode_string(draw: st.DrawFn) -> str:
    """U&'..' with \\ or a UESCAPE character, some characters written as escapes."""
    s = draw(secret())
    esc = draw(st.sampled_from(["\\", "!", "#"]))
    body = s.replace(esc, esc + esc).replace("'", "''")
    body = body.replace("x", f"{esc}0078", draw(st.integers(0, 1)))
    tail = "" if esc == "\\" else f" UESCAPE '{esc}'"
    return "U&'" + body + "'" + tail


@st.composite
def dollar_string(draw: st.DrawFn) -> str:
    """$$..$$ or $tag$..$tag$ whose body does not close it early."""
    tag = draw(st.sampled_from(["", "q", "body", "_t1"]))
    delim = f"${tag}$"
    s = draw(secret()).replace(delim, "")
    if s.endswith("$") or delim in s:  # would close (or extend) the delimiter
        s = s.replace("$", "")
    return delim + s + delim


NUMBERS = st.sampled_from(
    [
        "4111111111111112",
        "987654321",
        "31415.926535",
        "271828e10",
        "1.41421356E-7",
        "0x7fffffffab",
        "0o7777777",
        "0b1111111011",
        "1_234_567",
    ]
)


_HEX = "deadbeefcafe" + MARK.encode().hex()


def constant() -> st.SearchStrategy[str]:
    """One PostgreSQL constant of any syntax."""
    standard = secret().map(_standard)
    return st.one_of(
        standard,
        escape_string(),
        st.tuples(st.sampled_from(["N", "n"]), standard).map("".join),
        unicode_string(),
        dollar_string(),
        st.sampled_from(["B'1011001110001111'", "b'1011001110001111'"]),
        st.sampled_from([f"X'{_HEX}'", f"x'{_HEX}'"]),
        st.tuples(st.sampled_from(["DATE ", "INTERVAL ", "int8 "]), standard).map("".join),
        NUMBERS,
    )


@st.composite
def comment(draw: st.DrawFn) -> str:
    """A -- comment (to the end of the line) or a /* */ comment, possibly nested."""
    # PostgreSQL ends a -- comment at \n or \r: either inside the body would end it early
    # and turn the rest into code (a generator bug, not a leak).
    body = draw(secret()).replace("*/", "").replace("/*", "").replace("\n", " ")
    body = body.replace("\r", " ")
    body = body.replace("*", "").replace("/", "")
    if draw(st.booleans()):
        return "--" + body + "\n"
    if draw(st.booleans()):
        return "/* " + body + " /* " + MARK + " */ " + body + " */"
    return "/*" + body + "*/"


CODE = st.sampled_from(
    [" ", "\n", "\t", ", ", " AND ", " || ", " = ", "(", ")", " a ", " t.b ", '"Col"', "::text "]
)
HEADS = st.sampled_from(
    [
        "SELECT ",
        "SELECT a FROM t WHERE b = ",
        "SET statement_timeout = ",
        "CALL proc(",
        "EXPLAIN SELECT * FROM t WHERE id = ",
        "ALTER ROLE x PASSWORD ",
        "INSERT INTO t VALUES (",
        "UPDATE t SET a = ",
    ]
)


@st.composite
def statement(draw: st.DrawFn) -> str:
    """A statement head, then constants and comments with code between them."""
    parts = [draw(HEADS)]
    for _ in range(draw(st.integers(1, 5))):
        parts.append(draw(constant() | comment()))
        parts.append(draw(CODE))
    return "".join(parts)
