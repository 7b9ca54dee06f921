-- Seed: CREATE INDEX CONCURRENTLY, outside a transaction.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_users_email ON users (email);
CREATE INDEX CONCURRENTLY idx_users_active_email ON users (email) WHERE deleted_at IS NULL;
