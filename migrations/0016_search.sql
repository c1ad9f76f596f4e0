-- Search (docs/search.md): an index of every entry's name and description, and its tags, kept
-- by triggers on `entries`, so every change to a row changes the index in the same transaction
-- whatever wrote it (uploads, moves, copies, restores, replication, fsck).
-- SQLite-only (FTS5): a PostgreSQL store will need its own (pg_trgm) version of this file.
--
-- Entries are indexed by their rowid, which an UPDATE keeps: a folder move rewrites the paths
-- below it but not their names, so the index is touched only for the moved entry itself.
-- Tags are the JSON list of pairs under `x-amz-tagging` in the stored headers, the description
-- the text under `x-kura-description` (src/vfs/tags.rs); the index only mirrors them.

-- Names and descriptions as trigrams: substring match, case and diacritics folded.
CREATE VIRTUAL TABLE search_text USING fts5(
    name, descr, tokenize = 'trigram case_sensitive 0 remove_diacritics 1'
);

-- Tags, one row per (entry, key): exact key and key=value lookups in entry order.
CREATE TABLE search_tags (
    tag_key TEXT NOT NULL,
    tag_value TEXT NOT NULL,
    entry INTEGER NOT NULL,
    PRIMARY KEY (tag_key, tag_value, entry)
) WITHOUT ROWID;
CREATE INDEX search_tags_entry ON search_tags (entry);
CREATE INDEX search_tags_key ON search_tags (tag_key, entry);

CREATE TRIGGER search_insert AFTER INSERT ON entries BEGIN
    INSERT INTO search_text (rowid, name, descr) VALUES (
        new.rowid,
        CASE WHEN new.parent = '/' THEN substr(new.path, 2)
             ELSE substr(new.path, length(new.parent) + 2) END,
        CASE WHEN json_valid(new.headers)
             THEN json_extract(new.headers, '$."x-kura-description"') END);
    INSERT OR IGNORE INTO search_tags (tag_key, tag_value, entry)
        SELECT json_extract(t.value, '$[0]'), coalesce(json_extract(t.value, '$[1]'), ''), new.rowid
        FROM json_each(CASE WHEN json_valid(new.headers)
                             AND json_valid(json_extract(new.headers, '$."x-amz-tagging"'))
                            THEN json_extract(new.headers, '$."x-amz-tagging"') ELSE '[]' END) AS t
        WHERE json_type(t.value) = 'array' AND json_type(t.value, '$[0]') = 'text';
END;

CREATE TRIGGER search_delete AFTER DELETE ON entries BEGIN
    DELETE FROM search_text WHERE rowid = old.rowid;
    DELETE FROM search_tags WHERE entry = old.rowid;
END;

-- Only a change of name (a move's own entry, not the rows below it) or of headers reindexes.
CREATE TRIGGER search_update AFTER UPDATE OF path, headers ON entries
WHEN old.headers IS NOT new.headers
  OR (CASE WHEN old.parent = '/' THEN substr(old.path, 2)
           ELSE substr(old.path, length(old.parent) + 2) END)
     IS NOT (CASE WHEN new.parent = '/' THEN substr(new.path, 2)
                  ELSE substr(new.path, length(new.parent) + 2) END)
BEGIN
    DELETE FROM search_text WHERE rowid = old.rowid;
    DELETE FROM search_tags WHERE entry = old.rowid;
    INSERT INTO search_text (rowid, name, descr) VALUES (
        new.rowid,
        CASE WHEN new.parent = '/' THEN substr(new.path, 2)
             ELSE substr(new.path, length(new.parent) + 2) END,
        CASE WHEN json_valid(new.headers)
             THEN json_extract(new.headers, '$."x-kura-description"') END);
    INSERT OR IGNORE INTO search_tags (tag_key, tag_value, entry)
        SELECT json_extract(t.value, '$[0]'), coalesce(json_extract(t.value, '$[1]'), ''), new.rowid
        FROM json_each(CASE WHEN json_valid(new.headers)
                             AND json_valid(json_extract(new.headers, '$."x-amz-tagging"'))
                            THEN json_extract(new.headers, '$."x-amz-tagging"') ELSE '[]' END) AS t
        WHERE json_type(t.value) = 'array' AND json_type(t.value, '$[0]') = 'text';
END;

-- What exists already.
INSERT INTO search_text (rowid, name, descr)
    SELECT rowid,
           CASE WHEN parent = '/' THEN substr(path, 2) ELSE substr(path, length(parent) + 2) END,
           CASE WHEN json_valid(headers) THEN json_extract(headers, '$."x-kura-description"') END
    FROM entries;
INSERT OR IGNORE INTO search_tags (tag_key, tag_value, entry)
    SELECT json_extract(t.value, '$[0]'), coalesce(json_extract(t.value, '$[1]'), ''), e.rowid
    FROM entries AS e,
         json_each(CASE WHEN json_valid(e.headers)
                         AND json_valid(json_extract(e.headers, '$."x-amz-tagging"'))
                        THEN json_extract(e.headers, '$."x-amz-tagging"') ELSE '[]' END) AS t
    WHERE json_type(t.value) = 'array' AND json_type(t.value, '$[0]') = 'text';
