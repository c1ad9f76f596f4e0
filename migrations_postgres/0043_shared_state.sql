-- PostgreSQL twin of migrations/0043_shared_state.sql. The throttle windows are UNLOGGED:
-- no WAL per failed login; a crash of the database empties them (every window starts over),
-- which a throttle can afford.
CREATE UNLOGGED TABLE throttle_windows (
    key      TEXT COLLATE "C" PRIMARY KEY,
    n        BIGINT NOT NULL,
    until_ms BIGINT NOT NULL
);
CREATE INDEX throttle_windows_until ON throttle_windows (until_ms);

CREATE TABLE replication_leases (
    bucket   TEXT COLLATE "C" NOT NULL,
    peer     TEXT COLLATE "C" NOT NULL,
    holder   TEXT COLLATE "C" NOT NULL,
    until_ms BIGINT NOT NULL,
    PRIMARY KEY (bucket, peer),
    FOREIGN KEY (bucket, peer) REFERENCES replications (bucket, peer) ON DELETE CASCADE
);
