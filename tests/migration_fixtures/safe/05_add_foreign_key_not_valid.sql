-- Seed: NOT VALID, then VALIDATE (each statement its own transaction).
SET lock_timeout = '5s';
ALTER TABLE posts ADD CONSTRAINT fk_posts_user_id FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;
ALTER TABLE posts VALIDATE CONSTRAINT fk_posts_user_id;
