-- PostgreSQL twin of migrations/0015_object_lock.sql.
CREATE TABLE object_locks (
    version_id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    mode       TEXT COLLATE "C",
    until_ms   BIGINT,
    legal_hold BIGINT NOT NULL DEFAULT 0
);
