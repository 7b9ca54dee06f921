-- expect: rename-table
SET lock_timeout = '5s';
ALTER TABLE users RENAME TO customers;
