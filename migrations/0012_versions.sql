-- Versions and trash (docs/versions.md): the bytes a write or a delete replaced, kept outside
-- the visible tree (`<data_dir>/versions/<key>` on fs) and referenced here.

-- The version id of each current file (NULL: the "null" version of S3, a file written before
-- versions existed); it stays the row's id when the file becomes noncurrent.
ALTER TABLE entries ADD COLUMN version_id TEXT;

CREATE TABLE versions (
    -- Opaque, unique, sorts by creation time; S3's versionId.
    id           TEXT PRIMARY KEY NOT NULL,
    -- The path the bytes were current at, and its bucket (`/b`; policy, trash per bucket).
    path         TEXT NOT NULL,
    bucket       TEXT NOT NULL,
    -- 1: a delete marker (no bytes); 0: noncurrent bytes.
    marker       INTEGER NOT NULL DEFAULT 0,
    -- 1: the marker of a deleted folder (restoring its delete makes the folder again).
    is_dir       INTEGER NOT NULL DEFAULT 0,
    -- 1: the file had no version id of its own (S3's null version).
    null_version INTEGER NOT NULL DEFAULT 0,
    size         BIGINT NOT NULL DEFAULT 0,
    etag         TEXT NOT NULL DEFAULT '',
    content_type TEXT,
    owner        TEXT,
    headers      TEXT,
    grp          TEXT,
    mode         INTEGER NOT NULL DEFAULT 436,
    -- When the bytes were written, and when they stopped being current (ms since the epoch).
    mtime_ms     BIGINT NOT NULL,
    archived_ms  BIGINT NOT NULL,
    -- The delete this row came from (one id for a whole folder delete, the id of the marker of
    -- the deleted path itself); NULL: an overwrite.
    batch        TEXT,
    -- Where the bytes are, relative to the versions store (NULL for a marker).
    key          TEXT,
    -- The group charged for the bytes (the bucket's group when they became noncurrent).
    payer        TEXT
);
CREATE INDEX versions_by_path ON versions (path, archived_ms);
CREATE INDEX versions_by_batch ON versions (batch) WHERE batch IS NOT NULL;
CREATE INDEX versions_by_age ON versions (bucket, archived_ms);
CREATE INDEX versions_by_payer ON versions (payer, archived_ms);

-- Each bucket's policy is its bucket setting `versions` (0011_bucket_settings.sql), JSON:
-- {"trash_secs", "keep_versions", "keep_secs", "purge_first"}; none set: the defaults.

-- What noncurrent bytes cost each group, counted against its quota beside used_bytes.
ALTER TABLE groups ADD COLUMN version_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE groups ADD COLUMN version_objects BIGINT NOT NULL DEFAULT 0;
