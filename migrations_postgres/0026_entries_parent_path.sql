-- PostgreSQL twin of migrations/0026_entries_parent_path.sql.
CREATE INDEX entries_parent_path ON entries (parent, path);
DROP INDEX entries_parent;
