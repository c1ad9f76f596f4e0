-- PostgreSQL twin of migrations/0044_server_key_check.sql.
CREATE TABLE server_key_check (
    id     BIGINT PRIMARY KEY CHECK (id = 1),
    sealed TEXT COLLATE "C" NOT NULL
);
