-- Seed matrix: add nullable column, single migration; default for new rows only.
SET lock_timeout = '5s';
ALTER TABLE users ADD COLUMN email_verified boolean;
ALTER TABLE users ALTER COLUMN email_verified SET DEFAULT false;
