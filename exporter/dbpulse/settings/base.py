"""The base of every nested settings section: unknown keys and bad defaults are errors."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["Strict"]


class Strict(BaseModel):
    # extra="forbid": a typo in a config file is reported instead of silently falling back
    # to a default; validate_default: a default that breaks a constraint fails loudly too.
    model_config = ConfigDict(extra="forbid", validate_default=True)
