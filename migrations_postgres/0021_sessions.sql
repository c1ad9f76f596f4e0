-- PostgreSQL twin of migrations/0021_sessions.sql.
CREATE TABLE sessions (
    id_hash    TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    user_name  TEXT COLLATE "C" NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    csrf       TEXT COLLATE "C" NOT NULL,
    created_ms BIGINT NOT NULL,
    seen_ms    BIGINT NOT NULL,
    client     TEXT COLLATE "C",
    agent      TEXT COLLATE "C"
);
CREATE INDEX sessions_by_user ON sessions (user_name);

ALTER TABLE users ADD COLUMN totp_sealed TEXT COLLATE "C";
ALTER TABLE users ADD COLUMN totp_recovery TEXT COLLATE "C";
ALTER TABLE users ADD COLUMN totp_step BIGINT;
