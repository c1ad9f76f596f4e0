-- Blob keys on object stores (docs/scale-out.md, "Blobs on an object store"): on a service
-- other than `fs` a file's bytes live under an immutable key (`.kura-blobs/<2 hex>/<id>`),
-- not at its path, so a move rewrites rows only. NULL: the bytes are at the path (`fs`
-- always; files written on an object store before this migration).
ALTER TABLE entries ADD COLUMN blob TEXT;
CREATE INDEX entries_by_blob ON entries (blob) WHERE blob IS NOT NULL;
-- a kept version or trashed file references its blob by the same key
CREATE INDEX versions_by_key ON versions (key) WHERE key IS NOT NULL;
-- Blobs no row names any more, queued by the transaction that let go of them (at `gone_ms`)
-- and deleted from the store an hour after (a GET that opened the file before may still be
-- reading it: on `fs` an open file outlives its unlink, an object does not).
CREATE TABLE gone_blobs (
    key     TEXT PRIMARY KEY,
    gone_ms BIGINT NOT NULL DEFAULT 0
);
CREATE TRIGGER entries_blob_gone_delete AFTER DELETE ON entries
    WHEN old.blob IS NOT NULL
     AND NOT EXISTS (SELECT 1 FROM versions WHERE key = old.blob)
     AND NOT EXISTS (SELECT 1 FROM entries WHERE blob = old.blob)
BEGIN
    INSERT INTO gone_blobs (key, gone_ms)
    VALUES (old.blob, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))
    ON CONFLICT (key) DO NOTHING;
END;
CREATE TRIGGER entries_blob_gone_update AFTER UPDATE OF blob ON entries
    WHEN old.blob IS NOT NULL AND (new.blob IS NULL OR new.blob <> old.blob)
     AND NOT EXISTS (SELECT 1 FROM versions WHERE key = old.blob)
     AND NOT EXISTS (SELECT 1 FROM entries WHERE blob = old.blob)
BEGIN
    INSERT INTO gone_blobs (key, gone_ms)
    VALUES (old.blob, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))
    ON CONFLICT (key) DO NOTHING;
END;
CREATE TRIGGER versions_blob_gone_delete AFTER DELETE ON versions
    WHEN old.key LIKE '.kura-blobs/%'
     AND NOT EXISTS (SELECT 1 FROM versions WHERE key = old.key)
     AND NOT EXISTS (SELECT 1 FROM entries WHERE blob = old.key)
BEGIN
    INSERT INTO gone_blobs (key, gone_ms)
    VALUES (old.key, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))
    ON CONFLICT (key) DO NOTHING;
END;
