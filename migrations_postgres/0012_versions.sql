-- PostgreSQL twin of migrations/0012_versions.sql.
ALTER TABLE entries ADD COLUMN version_id TEXT COLLATE "C";

CREATE TABLE versions (
    id           TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    path         TEXT COLLATE "C" NOT NULL,
    bucket       TEXT COLLATE "C" NOT NULL,
    marker       BIGINT NOT NULL DEFAULT 0,
    is_dir       BIGINT NOT NULL DEFAULT 0,
    null_version BIGINT NOT NULL DEFAULT 0,
    size         BIGINT NOT NULL DEFAULT 0,
    etag         TEXT COLLATE "C" NOT NULL DEFAULT '',
    content_type TEXT COLLATE "C",
    owner        TEXT COLLATE "C",
    headers      TEXT COLLATE "C",
    grp          TEXT COLLATE "C",
    mode         BIGINT NOT NULL DEFAULT 436,
    mtime_ms     BIGINT NOT NULL,
    archived_ms  BIGINT NOT NULL,
    batch        TEXT COLLATE "C",
    key          TEXT COLLATE "C",
    payer        TEXT COLLATE "C"
);
CREATE INDEX versions_by_path ON versions (path, archived_ms);
CREATE INDEX versions_by_batch ON versions (batch) WHERE batch IS NOT NULL;
CREATE INDEX versions_by_age ON versions (bucket, archived_ms);
CREATE INDEX versions_by_payer ON versions (payer, archived_ms);

ALTER TABLE groups ADD COLUMN version_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE groups ADD COLUMN version_objects BIGINT NOT NULL DEFAULT 0;
