-- expect: create-index-not-concurrently
-- Seed matrix: add index (share lock).
SET lock_timeout = '5s';
CREATE INDEX idx_users_email ON users (email);
