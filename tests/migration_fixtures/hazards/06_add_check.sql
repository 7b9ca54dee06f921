-- expect: add-check-not-valid
SET lock_timeout = '5s';
ALTER TABLE posts ADD CONSTRAINT posts_title_length CHECK (length(title) < 200);
