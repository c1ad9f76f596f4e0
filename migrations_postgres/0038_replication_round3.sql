-- PostgreSQL twin of migrations/0038_replication_round3.sql.
ALTER TABLE node ADD COLUMN tombstone_keep_ms BIGINT;
