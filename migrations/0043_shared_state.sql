-- State the gateways on one database share (docs/scale-out.md): throttle windows and the
-- lease of each replication rule's worker. On SQLite (one process) neither is used: the
-- throttles stay in memory and the one process always holds every lease; the tables exist
-- so both migration sets stay twins.

-- A throttle window per key (`pair:`, `ip:`, `acct:`, `share:` + the key): `n` events since
-- the window opened, `until_ms` when it closes (for the share-link budget, GCRA's
-- theoretical arrival time). Purged once closed.
CREATE TABLE throttle_windows (
    key      TEXT PRIMARY KEY,
    n        BIGINT NOT NULL,
    until_ms BIGINT NOT NULL
);
CREATE INDEX throttle_windows_until ON throttle_windows (until_ms);

-- Which gateway ships a rule now, until when (renewed by the worker while it runs).
CREATE TABLE replication_leases (
    bucket   TEXT NOT NULL,
    peer     TEXT NOT NULL,
    holder   TEXT NOT NULL,
    until_ms BIGINT NOT NULL,
    PRIMARY KEY (bucket, peer),
    FOREIGN KEY (bucket, peer) REFERENCES replications (bucket, peer) ON DELETE CASCADE
);
