-- PostgreSQL twin of migrations/0009_peer_keys.sql.
CREATE TABLE peer_keys (
    key_id     TEXT COLLATE "C" PRIMARY KEY REFERENCES access_keys (id) ON DELETE CASCADE,
    peer       TEXT COLLATE "C" NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX peer_keys_peer ON peer_keys (peer);

ALTER TABLE replications ADD COLUMN skipped BIGINT NOT NULL DEFAULT 0;
ALTER TABLE replications ADD COLUMN last_skipped TEXT COLLATE "C";
