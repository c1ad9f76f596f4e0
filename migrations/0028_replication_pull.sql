-- Outbound-only nodes (docs/replication.md, "Pull"): a peer this node pulls from (it cannot
-- reach us), and per rule how far this node has applied that peer's journal (its cursor,
-- a `journal.seq` on the peer; stored after each applied entry, so a restart resumes).
ALTER TABLE peers ADD COLUMN pull INTEGER NOT NULL DEFAULT 0;
ALTER TABLE replications ADD COLUMN pulled BIGINT NOT NULL DEFAULT 0;

-- Keys a rule set aside (docs/replication.md, "Nothing forced"): a change the other side
-- refused for that key alone (a lock, its quota, its permissions) waits here and is retried
-- at `next_ms`, while the rule goes on with the other keys; never dropped. `direction` is
-- `push` (the peer refused our shipment) or `pull` (this node refused the peer's change).
CREATE TABLE replication_waiting (
    bucket     TEXT NOT NULL,
    peer       TEXT NOT NULL,
    path       TEXT NOT NULL,
    direction  TEXT NOT NULL,
    origin     TEXT,
    reason     TEXT NOT NULL,
    tries      INTEGER NOT NULL,
    since_ms   BIGINT NOT NULL,
    next_ms    BIGINT NOT NULL,
    PRIMARY KEY (bucket, peer, path, direction),
    FOREIGN KEY (bucket, peer) REFERENCES replications (bucket, peer) ON DELETE CASCADE
);

-- Owners and groups a peer's shipments named that this node does not have, and who stood
-- in for them (shown by `kura peer status`).
CREATE TABLE replication_unmapped (
    peer       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    name       TEXT NOT NULL,
    mapped_to  TEXT NOT NULL,
    last_path  TEXT NOT NULL,
    count      INTEGER NOT NULL,
    last_ms    BIGINT NOT NULL,
    PRIMARY KEY (peer, kind, name)
);
