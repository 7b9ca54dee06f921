-- Non-volatile default: stored once, no rewrite (PostgreSQL 11+); volatile one set after.
SET lock_timeout = '5s';
ALTER TABLE users ADD COLUMN created_at timestamptz DEFAULT now();
ALTER TABLE users ADD COLUMN token uuid;
ALTER TABLE users ALTER COLUMN token SET DEFAULT gen_random_uuid();
