-- PostgreSQL twin of migrations/0005_locks.sql.
CREATE TABLE locks (
    token         TEXT COLLATE "C" PRIMARY KEY,
    path          TEXT COLLATE "C" NOT NULL,
    collection    BIGINT NOT NULL,
    principal     TEXT COLLATE "C",
    owner_xml     TEXT COLLATE "C",
    timeout_at_ms BIGINT,
    timeout_s     BIGINT,
    shared        BIGINT NOT NULL,
    deep          BIGINT NOT NULL,
    created_ms    BIGINT NOT NULL
);
CREATE INDEX locks_path ON locks (path);
