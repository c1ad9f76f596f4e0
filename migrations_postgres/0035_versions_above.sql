-- PostgreSQL twin of migrations/0035_versions_above.sql.
ALTER TABLE versions ADD COLUMN above TEXT COLLATE "C";
