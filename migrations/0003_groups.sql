-- Groups, memberships, POSIX-style ownership and modes, per-group quotas and usage.

CREATE TABLE groups (
    name          TEXT PRIMARY KEY,
    quota_bytes   BIGINT,
    quota_objects BIGINT,
    used_bytes    BIGINT NOT NULL DEFAULT 0,
    used_objects  BIGINT NOT NULL DEFAULT 0,
    created_ms    BIGINT NOT NULL
);

CREATE TABLE memberships (
    user_name  TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    group_name TEXT NOT NULL REFERENCES groups (name) ON DELETE CASCADE,
    PRIMARY KEY (user_name, group_name)
);

ALTER TABLE users ADD COLUMN primary_group TEXT;
ALTER TABLE users ADD COLUMN can_create_buckets INTEGER NOT NULL DEFAULT 0;

-- The owning group of an entry (a bucket's group owns everything in it) and its mode bits.
ALTER TABLE entries ADD COLUMN grp TEXT;
ALTER TABLE entries ADD COLUMN mode INTEGER NOT NULL DEFAULT 509;
