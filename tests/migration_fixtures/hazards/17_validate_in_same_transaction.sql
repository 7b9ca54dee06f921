-- expect: validate-in-same-transaction
-- The seed's example runs both in one Alembic transaction: the ADD's lock is held
-- through the whole validation.
BEGIN;
SET LOCAL lock_timeout = '5s';
ALTER TABLE posts ADD CONSTRAINT fk_posts_user_id FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;
ALTER TABLE posts VALIDATE CONSTRAINT fk_posts_user_id;
COMMIT;
