-- A folder's children in path order straight from the index, so that a listing read in
-- pages (WebDAV PROPFIND) costs each page its own size, not the folder's. Replaces the index
-- on parent alone, of which it is a prefix.
CREATE INDEX entries_parent_path ON entries (parent, path);
DROP INDEX entries_parent;
