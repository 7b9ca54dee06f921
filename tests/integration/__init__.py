"""Integration: collectors, runtime, HTTP, CLI and faults against real PostgreSQL servers."""
