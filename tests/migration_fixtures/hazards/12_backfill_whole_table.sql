-- expect: whole-table-update
-- Seed matrix phase 2 done in one statement.
UPDATE users SET email_verified = false;
