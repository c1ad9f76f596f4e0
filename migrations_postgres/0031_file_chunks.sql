-- PostgreSQL twin of migrations/0031_file_chunks.sql (list: BYTEA for SQLite's BLOB).
CREATE TABLE file_chunks (
    path     TEXT COLLATE "C" NOT NULL,
    avg      BIGINT NOT NULL,
    etag     TEXT COLLATE "C" NOT NULL,
    size     BIGINT NOT NULL,
    blake3   TEXT COLLATE "C" NOT NULL,
    list     BYTEA NOT NULL,
    made_ms  BIGINT NOT NULL,
    PRIMARY KEY (path, avg)
);
