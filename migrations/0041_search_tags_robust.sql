-- The search triggers of 0016 again, with one change: a list element that is not a
-- [key, value] pair is skipped by json_each's own `type` column, never handed to json_type().
-- json_each gives a string element as bare text, and json_type('abc') fails (malformed JSON),
-- so stored tags such as `["abc"]` or `"abc"` (not written by Kura's own tag writer, which
-- only stores checked pairs, but by a damaged or foreign row) failed every write of their
-- row, fsck and the index rebuild. CASE keeps the second test from running on other types.

DROP TRIGGER search_insert;
DROP TRIGGER search_update;

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
        WHERE CASE WHEN t.type = 'array' THEN json_type(t.value, '$[0]') = 'text' ELSE 0 END;
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
        WHERE CASE WHEN t.type = 'array' THEN json_type(t.value, '$[0]') = 'text' ELSE 0 END;
END;
