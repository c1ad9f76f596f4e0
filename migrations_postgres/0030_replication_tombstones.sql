-- PostgreSQL twin of migrations/0030_replication_tombstones.sql.
CREATE TABLE tombstones (
    path       TEXT COLLATE "C" PRIMARY KEY,
    etag       TEXT COLLATE "C" NOT NULL,
    mtime_ms   BIGINT NOT NULL,
    origin     TEXT COLLATE "C",
    deleted_ms BIGINT NOT NULL
);
CREATE INDEX tombstones_deleted ON tombstones (deleted_ms);

ALTER TABLE peers ADD COLUMN seen_ms BIGINT;
ALTER TABLE peers ADD COLUMN away_ms BIGINT;
ALTER TABLE peers ADD COLUMN back_ms BIGINT;
