-- Peer replication: this node's identity, peers, rules, the change journal and what each
-- peer is known to hold.

-- One row: the id this node stamps on the changes it originates.
CREATE TABLE node (
    id         TEXT PRIMARY KEY,
    created_ms BIGINT NOT NULL
);

CREATE TABLE peers (
    name           TEXT PRIMARY KEY,
    endpoint       TEXT NOT NULL,
    access_key     TEXT NOT NULL,
    secret_enc     TEXT NOT NULL,
    ca_fingerprint TEXT,
    -- the peer's own node id, learnt at first contact (NULL for plain S3 stores)
    node_id        TEXT,
    created_ms     BIGINT NOT NULL
);

-- A bucket mirrored to a peer; `position` is the last journal seq shipped (durable).
CREATE TABLE replications (
    bucket        TEXT NOT NULL,
    peer          TEXT NOT NULL REFERENCES peers (name) ON DELETE CASCADE,
    prefix        TEXT NOT NULL DEFAULT '',
    bidirectional INTEGER NOT NULL DEFAULT 0,
    position      BIGINT NOT NULL DEFAULT 0,
    shipped       BIGINT NOT NULL DEFAULT 0,
    last_error    TEXT,
    last_ok_ms    BIGINT,
    created_ms    BIGINT NOT NULL,
    PRIMARY KEY (bucket, peer)
);

-- Every committed change of a file in a replicated bucket, written in the change's transaction.
-- `origin` is the node the change came from (NULL: this node).
CREATE TABLE journal (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    bucket     TEXT NOT NULL,
    path       TEXT NOT NULL,
    origin     TEXT,
    created_ms BIGINT NOT NULL
);
CREATE INDEX journal_bucket ON journal (bucket, seq);

-- The version (ETag) a node is known to hold at a path: the base of the next change shipped there.
CREATE TABLE replica_marks (
    node TEXT NOT NULL,
    path TEXT NOT NULL,
    etag TEXT NOT NULL,
    PRIMARY KEY (node, path)
);

-- The node a file's current version was written on (NULL: this node).
ALTER TABLE entries ADD COLUMN origin TEXT;
