"""``dbpulse lint-migrations``: flag lock-taking and table-rewriting DDL before it runs.

Statements come from SQL files or from Alembic's offline ``upgrade --sql`` output, are
parsed by PostgreSQL's own parser (pglast), and go through pure rules (``rules``) that
know the seed's zero-downtime decision matrix and give its fix for each hazard.
"""
