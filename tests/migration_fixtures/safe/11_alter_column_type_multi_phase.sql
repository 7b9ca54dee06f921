-- Seed: multi-phase type change: a new column, backfilled in batches.
SET lock_timeout = '5s';
ALTER TABLE users ADD COLUMN id_new bigint;
