-- Kura metadata, version 1. Portable SQL: TEXT, BIGINT and INTEGER only, no engine-specific types.

CREATE TABLE users (
    name          TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    is_admin      INTEGER NOT NULL DEFAULT 0,
    created_ms    BIGINT NOT NULL
);

-- One row per file and folder below the root; the root itself has no row.
CREATE TABLE entries (
    path         TEXT PRIMARY KEY,
    parent       TEXT NOT NULL,
    is_dir       INTEGER NOT NULL,
    size         BIGINT NOT NULL,
    mtime_ms     BIGINT NOT NULL,
    etag         TEXT NOT NULL,
    content_type TEXT,
    owner        TEXT
);
CREATE INDEX entries_parent ON entries (parent);

-- WebDAV dead properties; they follow their entry on MOVE/COPY and go with DELETE.
CREATE TABLE dead_props (
    path      TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name      TEXT NOT NULL,
    prefix    TEXT,
    xml       TEXT,
    PRIMARY KEY (path, namespace, name)
);
