"""Unit: the in-process hooks' pure parts (fingerprints, scopes, lint, SQLAlchemy compat)."""
