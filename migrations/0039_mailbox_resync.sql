-- The peer's letters this node refused (missing from the mailbox or altered there), as
-- ranges of seqs: every one is asked for again, oldest first, a page at a time, until the
-- peer says it sent its path again (docs/replication.md, "Neither side reachable"). Was a
-- JSON list of the latest 64 in `replications.mailbox_refused`: the older ones were lost.
CREATE TABLE mailbox_refused (
    bucket TEXT NOT NULL,
    peer   TEXT NOT NULL,
    lo     BIGINT NOT NULL,
    hi     BIGINT NOT NULL,
    PRIMARY KEY (bucket, peer, lo),
    FOREIGN KEY (bucket, peer) REFERENCES replications (bucket, peer) ON DELETE CASCADE
);
INSERT OR IGNORE INTO mailbox_refused (bucket, peer, lo, hi)
    SELECT r.bucket, r.peer, j.value, j.value
    FROM replications r, json_each(r.mailbox_refused) j
    WHERE json_valid(r.mailbox_refused) AND j.type = 'integer';

-- A resync through the mailbox: 1 when this node is to send a manifest of its files asking
-- the peer for its own (`kura replicate --resync`), 2 when it is to answer the peer's with
-- its own; written once the letters before it are (docs/replication.md).
ALTER TABLE replications ADD COLUMN mailbox_manifest INTEGER NOT NULL DEFAULT 0;
