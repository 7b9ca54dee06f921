-- expect: drop-column
-- Seed matrix: drop column (the code must stop using it first).
SET lock_timeout = '5s';
ALTER TABLE users DROP COLUMN legacy_flag;
