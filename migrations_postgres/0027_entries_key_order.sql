-- PostgreSQL twin of migrations/0027_entries_key_order.sql. The expression inherits the
-- column's "C" collation, so the index serves the store's keyset pages in byte order.
CREATE INDEX entries_parent_key ON entries (parent, (CASE WHEN is_dir = 1 THEN path || '/' ELSE path END));
DROP INDEX IF EXISTS entries_parent;
