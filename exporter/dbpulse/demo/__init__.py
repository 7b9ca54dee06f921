"""`dbpulse demo`: a throwaway PostgreSQL, a sidecar, an instrumented app, and trouble."""
