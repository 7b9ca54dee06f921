-- Seed phase 2: one batch (the caller loops until no row changes, committing each).
UPDATE users SET email_verified = false
WHERE id IN (SELECT id FROM users WHERE email_verified IS NULL ORDER BY id LIMIT 10000);
