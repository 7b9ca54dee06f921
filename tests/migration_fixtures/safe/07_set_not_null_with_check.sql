-- Seed phase 3 without the scan: a validated CHECK lets SET NOT NULL skip it (PG 12+).
SET lock_timeout = '5s';
ALTER TABLE users ADD CONSTRAINT users_email_verified_nn CHECK (email_verified IS NOT NULL) NOT VALID;
ALTER TABLE users VALIDATE CONSTRAINT users_email_verified_nn;
ALTER TABLE users ALTER COLUMN email_verified SET NOT NULL;
ALTER TABLE users DROP CONSTRAINT users_email_verified_nn;
