-- Replication reception made explicit: an access key bound to a peer is the only way a
-- request is taken for a peer's shipment (never its headers). Deleting the key unbinds it.
CREATE TABLE peer_keys (
    key_id     TEXT PRIMARY KEY REFERENCES access_keys (id) ON DELETE CASCADE,
    peer       TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX peer_keys_peer ON peer_keys (peer);

-- Shipments a peer kept refusing, skipped so the rest of the rule goes on.
ALTER TABLE replications ADD COLUMN skipped BIGINT NOT NULL DEFAULT 0;
ALTER TABLE replications ADD COLUMN last_skipped TEXT;
