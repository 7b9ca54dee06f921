-- expect: drop-index-not-concurrently
SET lock_timeout = '5s';
DROP INDEX idx_users_email;
