"""SQL fingerprints for the in-process hooks: the shared SQL-text module's, re-exported.

Normalising and fingerprinting live in :mod:`dbpulse.sql` (PostgreSQL's own lexer for
PostgreSQL, a simple fail-closed tokenizer for other dialects), used by the sidecar too;
this module keeps the names the in-process code and its users import.
"""

from __future__ import annotations

from dbpulse.sql import OPERATIONS, Fingerprint, fingerprint, normalize, strip_comments

__all__ = ["OPERATIONS", "Fingerprint", "fingerprint", "normalize", "strip_comments"]
