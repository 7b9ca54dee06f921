"""The README's written-out signatures of the public in-process API match the code."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import dbpulse

README = Path(__file__).resolve().parents[2] / "README.md"


def documented(name: str) -> list[str]:
    """The parameters of README's "`name(...)`" signature, as written ("a=1", "*")."""
    text = " ".join(README.read_text().split())
    # The reference signature is the longest of the README's calls written out.
    calls = re.findall(rf"`{name}\(([^`]*?)\)(?: -> \w+)?`", text)
    assert calls, f"README has no `{name}(...)` signature"
    return [p.strip() for p in max(calls, key=len).split(",")]


def actual(function: Callable[..., Any]) -> list[str]:
    """The same rendering of the function's real signature (defaults by repr)."""
    out: list[str] = []
    for param in inspect.signature(function).parameters.values():
        if param.kind is param.KEYWORD_ONLY and "*" not in out:
            out.append("*")
        text = param.name
        if param.default is not param.empty:
            text += "=" + repr(param.default).replace("'", '"')
        out.append(text)
    return out


@pytest.mark.parametrize(
    ("name", "function"),
    [("instrument", dbpulse.instrument), ("serve_metrics", dbpulse.serve_metrics)],
)
def test_readme_signature_lists_every_parameter_and_default(
    name: str, function: Callable[..., Any]
) -> None:
    """Every parameter and default of the function is in README's signature, in order."""
    assert documented(name) == actual(function)
