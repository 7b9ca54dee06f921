BEGIN;
SET LOCAL lock_timeout = '5s';
ALTER TABLE users ADD COLUMN nickname text;
COMMIT;
CREATE INDEX CONCURRENTLY idx_users_nickname ON users (nickname);
