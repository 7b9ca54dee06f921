"""In-process integration: instrument() on real engines (PostgreSQL, SQLite, async), pool, N+1, tracing."""
