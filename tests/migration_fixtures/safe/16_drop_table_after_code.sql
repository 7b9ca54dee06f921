SET lock_timeout = '5s';
-- dbpulse: ignore=drop-table reason: unused since release 40, data exported to the archive
DROP TABLE old_sessions;
