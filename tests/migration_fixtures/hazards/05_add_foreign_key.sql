-- expect: add-foreign-key-not-valid
-- Seed matrix: add foreign key (share lock on both tables).
SET lock_timeout = '5s';
ALTER TABLE posts ADD CONSTRAINT fk_posts_user_id FOREIGN KEY (user_id) REFERENCES users (id);
