-- Seed: add new -> dual write -> drop old. Phase 1: the new column.
SET lock_timeout = '5s';
ALTER TABLE users ADD COLUMN full_name text;
