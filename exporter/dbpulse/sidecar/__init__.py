"""Sidecar mode: poll PostgreSQL's catalog views and serve the last good snapshot."""
