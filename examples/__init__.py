"""Runnable applications embedding dbpulse (each directory has its own README line in
its module docstring); tests/integration/examples runs them against a real PostgreSQL."""
