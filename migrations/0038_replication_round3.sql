-- The tombstone retention (`replication.tombstone_days`) the server runs with, recorded at
-- its start, so that admin commands (another process, perhaps another configuration) judge
-- a peer's absence by the same measure as the server did.
ALTER TABLE node ADD COLUMN tombstone_keep_ms BIGINT;
