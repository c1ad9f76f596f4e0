-- WebDAV locks, persistent and shared by every gateway on this database; S3 writes honour them.
CREATE TABLE locks (
    token         TEXT PRIMARY KEY,
    path          TEXT NOT NULL,
    collection    INTEGER NOT NULL,
    principal     TEXT,
    owner_xml     TEXT,
    timeout_at_ms BIGINT,
    timeout_s     BIGINT,
    shared        INTEGER NOT NULL,
    deep          INTEGER NOT NULL,
    created_ms    BIGINT NOT NULL
);
CREATE INDEX locks_path ON locks (path);
