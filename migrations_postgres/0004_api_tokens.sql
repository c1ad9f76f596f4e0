-- PostgreSQL twin of migrations/0004_api_tokens.sql.
CREATE TABLE api_tokens (
    id         TEXT COLLATE "C" PRIMARY KEY,
    token_hash TEXT COLLATE "C" NOT NULL UNIQUE,
    name       TEXT COLLATE "C",
    created_ms BIGINT NOT NULL
);
