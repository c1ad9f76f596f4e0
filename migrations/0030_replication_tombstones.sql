-- Deletions remembered for replication (docs/replication.md, "Deletes while a node was
-- away"): the version each deleted file held (its ETag and modification time, which name
-- a version on every node), who deleted it and when. Kept `replication.tombstone_days`,
-- one row per path (the latest deletion), on nodes that have a peer.
CREATE TABLE tombstones (
    path       TEXT PRIMARY KEY,
    etag       TEXT NOT NULL,
    mtime_ms   BIGINT NOT NULL,
    -- the node the deletion came from (NULL: this node)
    origin     TEXT,
    deleted_ms BIGINT NOT NULL
);
CREATE INDEX tombstones_deleted ON tombstones (deleted_ms);

-- When this node last reached each peer (or the peer pulled from it), and the last absence
-- longer than tombstones are kept: how long, and when it ended.
ALTER TABLE peers ADD COLUMN seen_ms BIGINT;
ALTER TABLE peers ADD COLUMN away_ms BIGINT;
ALTER TABLE peers ADD COLUMN back_ms BIGINT;
