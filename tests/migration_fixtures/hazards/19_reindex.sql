-- expect: reindex-not-concurrently
SET lock_timeout = '5s';
REINDEX INDEX idx_users_email;
