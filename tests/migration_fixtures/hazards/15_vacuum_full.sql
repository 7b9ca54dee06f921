-- expect: vacuum-full-or-cluster
SET lock_timeout = '5s';
VACUUM FULL users;
