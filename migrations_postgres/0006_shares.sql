-- PostgreSQL twin of migrations/0006_shares.sql.
CREATE TABLE shares (
    id            TEXT COLLATE "C" PRIMARY KEY,
    token_hash    TEXT COLLATE "C" NOT NULL UNIQUE,
    owner         TEXT COLLATE "C" NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    path          TEXT COLLATE "C" NOT NULL,
    password_hash TEXT COLLATE "C",
    expires_ms    BIGINT,
    max_downloads BIGINT,
    downloads     BIGINT NOT NULL DEFAULT 0,
    upload_only   BIGINT NOT NULL DEFAULT 0,
    created_ms    BIGINT NOT NULL
);
CREATE INDEX shares_owner ON shares (owner);
