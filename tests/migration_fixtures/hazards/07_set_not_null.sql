-- expect: set-not-null-without-check
-- Seed matrix phase 3 done in one step: scans the table under ACCESS EXCLUSIVE.
SET lock_timeout = '5s';
ALTER TABLE users ALTER COLUMN email_verified SET NOT NULL;
