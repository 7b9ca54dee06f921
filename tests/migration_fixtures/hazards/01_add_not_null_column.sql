-- expect: add-column-not-null-no-default
-- Seed matrix: add NOT NULL column (table lock, fails on existing rows).
SET lock_timeout = '5s';
ALTER TABLE users ADD COLUMN email_verified boolean NOT NULL;
