-- PostgreSQL twin of migrations/0024_encryption.sql.
ALTER TABLE entries ADD COLUMN sealed TEXT COLLATE "C";
ALTER TABLE versions ADD COLUMN sealed TEXT COLLATE "C";
ALTER TABLE multipart_parts ADD COLUMN sealed TEXT COLLATE "C";
CREATE INDEX entries_sealed_key ON entries (substr(sealed, 4, 16)) WHERE sealed IS NOT NULL;
CREATE INDEX versions_sealed_key ON versions (substr(sealed, 4, 16)) WHERE sealed IS NOT NULL;
