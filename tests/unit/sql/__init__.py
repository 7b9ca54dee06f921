"""Unit: dbpulse.sql on PostgreSQL's lexer: every constant and comment kind, properties, fuzz."""
