-- expect: lock-timeout-missing
ALTER TABLE users ADD COLUMN nickname text;
