-- Admin API tokens: only a SHA-256 of each token is kept.
CREATE TABLE api_tokens (
    id         TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    name       TEXT,
    created_ms BIGINT NOT NULL
);
