-- Replication through an S3 mailbox (docs/replication.md, "Neither side reachable"): a peer
-- both nodes reach only through a bucket. Its `peers` row holds the mailbox server's
-- endpoint, access key and secret; this row the bucket, the prefix inside it and the secret
-- shared with the peer (sealed with the server key), from which every mailbox key derives.
CREATE TABLE mailboxes (
    peer       TEXT PRIMARY KEY REFERENCES peers (name) ON DELETE CASCADE,
    bucket     TEXT NOT NULL,
    prefix     TEXT NOT NULL,
    secret_enc TEXT NOT NULL
);

-- Letters this node wrote to a rule's channel that the peer has not acknowledged yet: the
-- path each carried and the body it names (bodies are content-addressed: one body may serve
-- several letters). Acknowledged rows go, with their objects in the mailbox.
CREATE TABLE mailbox_letters (
    bucket TEXT NOT NULL,
    peer   TEXT NOT NULL,
    seq    BIGINT NOT NULL,
    path   TEXT NOT NULL,
    body   TEXT,
    PRIMARY KEY (bucket, peer, seq),
    FOREIGN KEY (bucket, peer) REFERENCES replications (bucket, peer) ON DELETE CASCADE
);
CREATE INDEX mailbox_letters_body ON mailbox_letters (bucket, peer, body);

-- The peer's letter a key waits on here (its change was refused by a lock, the quota or a
-- permission): read again from the mailbox when retried, and kept there until then.
CREATE TABLE mailbox_waiting (
    bucket TEXT NOT NULL,
    peer   TEXT NOT NULL,
    path   TEXT NOT NULL,
    seq    BIGINT NOT NULL,
    PRIMARY KEY (bucket, peer, path),
    FOREIGN KEY (bucket, peer) REFERENCES replications (bucket, peer) ON DELETE CASCADE
);

-- Per rule: the last seq written to this node's channel, the last the peer acknowledged
-- (everything up to it is removed from the mailbox), the last refused seq of ours already
-- sent again, and the peer's seqs this node refused (JSON, the latest 64), which its
-- acknowledgement asks the peer to send again. `pulled` is the cursor in the peer's channel.
ALTER TABLE replications ADD COLUMN mailbox_sent BIGINT NOT NULL DEFAULT 0;
ALTER TABLE replications ADD COLUMN mailbox_acked BIGINT NOT NULL DEFAULT 0;
ALTER TABLE replications ADD COLUMN mailbox_redone BIGINT NOT NULL DEFAULT 0;
ALTER TABLE replications ADD COLUMN mailbox_refused TEXT NOT NULL DEFAULT '[]';
