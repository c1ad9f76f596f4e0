-- Delta transfer (docs/replication.md, "Delta transfer"): the content-defined chunks of a
-- file version, kept so that a peer can be told which parts of a large file it already
-- holds. One row per file and average chunk size; `list` packs each chunk as its length
-- (u32, little-endian) and its BLAKE3 hash (32 bytes), in order. A row whose `etag` is not
-- the file's current one is stale: recomputed when asked for, pruned in the background.
CREATE TABLE file_chunks (
    path     TEXT NOT NULL,
    avg      INTEGER NOT NULL,
    etag     TEXT NOT NULL,
    size     BIGINT NOT NULL,
    blake3   TEXT NOT NULL,
    list     BLOB NOT NULL,
    made_ms  BIGINT NOT NULL,
    PRIMARY KEY (path, avg)
);
