-- A delimited S3 listing pages through one folder in key order, where a folder sorts as its
-- path plus '/'. Indexed on that key within the parent, each page starts at its first key
-- (keyset pagination from the continuation token) instead of sorting the whole folder: a page
-- of a 100,000-entry folder cost 70-78 ms, growing with the folder. The index leads with
-- `parent`, so it also serves every lookup `entries_parent` served (0026 dropped that index already).
CREATE INDEX entries_parent_key ON entries (parent, (CASE WHEN is_dir = 1 THEN path || '/' ELSE path END));
DROP INDEX IF EXISTS entries_parent;
