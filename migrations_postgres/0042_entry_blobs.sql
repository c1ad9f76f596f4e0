-- PostgreSQL twin of migrations/0042_entry_blobs.sql: the blob column, its queue of blobs to
-- delete after COMMIT, and the same row triggers (one function, as SQLite's bodies).
ALTER TABLE entries ADD COLUMN blob TEXT COLLATE "C";
CREATE INDEX entries_by_blob ON entries (blob) WHERE blob IS NOT NULL;
CREATE INDEX versions_by_key ON versions (key) WHERE key IS NOT NULL;
CREATE TABLE gone_blobs (
    key     TEXT COLLATE "C" PRIMARY KEY,
    gone_ms BIGINT NOT NULL DEFAULT 0
);

CREATE FUNCTION kura_blob_gone() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    k TEXT;
BEGIN
    IF TG_TABLE_NAME = 'entries' THEN
        k := OLD.blob;
        IF TG_OP = 'UPDATE' AND NEW.blob IS NOT DISTINCT FROM OLD.blob THEN
            RETURN NULL;
        END IF;
    ELSE
        k := OLD.key;
        IF k IS NULL OR k NOT LIKE '.kura-blobs/%' THEN
            RETURN NULL;
        END IF;
    END IF;
    IF k IS NULL
       OR EXISTS (SELECT 1 FROM versions WHERE key = k)
       OR EXISTS (SELECT 1 FROM entries WHERE blob = k) THEN
        RETURN NULL;
    END IF;
    INSERT INTO gone_blobs (key, gone_ms)
    VALUES (k, CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT))
    ON CONFLICT (key) DO NOTHING;
    RETURN NULL;
END $$;

CREATE TRIGGER entries_blob_gone_delete AFTER DELETE ON entries
    FOR EACH ROW EXECUTE FUNCTION kura_blob_gone();
CREATE TRIGGER entries_blob_gone_update AFTER UPDATE OF blob ON entries
    FOR EACH ROW EXECUTE FUNCTION kura_blob_gone();
CREATE TRIGGER versions_blob_gone_delete AFTER DELETE ON versions
    FOR EACH ROW EXECUTE FUNCTION kura_blob_gone();
