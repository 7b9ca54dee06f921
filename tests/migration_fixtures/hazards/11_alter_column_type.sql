-- expect: alter-column-type-rewrite
-- Seed matrix: alter column type (table lock, rewrite).
SET lock_timeout = '5s';
ALTER TABLE users ALTER COLUMN id TYPE bigint;
