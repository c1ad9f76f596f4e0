-- PostgreSQL twin of migrations/0003_groups.sql.

CREATE TABLE groups (
    name          TEXT COLLATE "C" PRIMARY KEY,
    quota_bytes   BIGINT,
    quota_objects BIGINT,
    used_bytes    BIGINT NOT NULL DEFAULT 0,
    used_objects  BIGINT NOT NULL DEFAULT 0,
    created_ms    BIGINT NOT NULL
);

CREATE TABLE memberships (
    user_name  TEXT COLLATE "C" NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    group_name TEXT COLLATE "C" NOT NULL REFERENCES groups (name) ON DELETE CASCADE,
    PRIMARY KEY (user_name, group_name)
);

ALTER TABLE users ADD COLUMN primary_group TEXT COLLATE "C";
ALTER TABLE users ADD COLUMN can_create_buckets BIGINT NOT NULL DEFAULT 0;

ALTER TABLE entries ADD COLUMN grp TEXT COLLATE "C";
ALTER TABLE entries ADD COLUMN mode BIGINT NOT NULL DEFAULT 509;
