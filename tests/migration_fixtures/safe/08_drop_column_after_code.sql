-- Seed: stop using, then drop. The linter cannot see the code, so say so:
SET lock_timeout = '5s';
-- dbpulse: ignore=drop-column reason: release 41 stopped reading users.legacy_flag
ALTER TABLE users DROP COLUMN legacy_flag;
