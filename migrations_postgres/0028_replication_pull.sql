-- PostgreSQL twin of migrations/0028_replication_pull.sql.
ALTER TABLE peers ADD COLUMN pull BIGINT NOT NULL DEFAULT 0;
ALTER TABLE replications ADD COLUMN pulled BIGINT NOT NULL DEFAULT 0;

CREATE TABLE replication_waiting (
    bucket     TEXT COLLATE "C" NOT NULL,
    peer       TEXT COLLATE "C" NOT NULL,
    path       TEXT COLLATE "C" NOT NULL,
    direction  TEXT COLLATE "C" NOT NULL,
    origin     TEXT COLLATE "C",
    reason     TEXT COLLATE "C" NOT NULL,
    tries      BIGINT NOT NULL,
    since_ms   BIGINT NOT NULL,
    next_ms    BIGINT NOT NULL,
    PRIMARY KEY (bucket, peer, path, direction),
    FOREIGN KEY (bucket, peer) REFERENCES replications (bucket, peer) ON DELETE CASCADE
);

CREATE TABLE replication_unmapped (
    peer       TEXT COLLATE "C" NOT NULL,
    kind       TEXT COLLATE "C" NOT NULL,
    name       TEXT COLLATE "C" NOT NULL,
    mapped_to  TEXT COLLATE "C" NOT NULL,
    last_path  TEXT COLLATE "C" NOT NULL,
    count      BIGINT NOT NULL,
    last_ms    BIGINT NOT NULL,
    PRIMARY KEY (peer, kind, name)
);
