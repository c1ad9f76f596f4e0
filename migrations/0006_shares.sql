-- Public share links. Only a SHA-256 of each token is kept; the owner acts for the visitor, so
-- the owner's current permissions decide at every request. Revoking deletes the row.
CREATE TABLE shares (
    id            TEXT PRIMARY KEY,
    token_hash    TEXT NOT NULL UNIQUE,
    owner         TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    path          TEXT NOT NULL,
    password_hash TEXT,
    expires_ms    BIGINT,
    max_downloads BIGINT,
    downloads     BIGINT NOT NULL DEFAULT 0,
    upload_only   INTEGER NOT NULL DEFAULT 0,
    created_ms    BIGINT NOT NULL
);
CREATE INDEX shares_owner ON shares (owner);
