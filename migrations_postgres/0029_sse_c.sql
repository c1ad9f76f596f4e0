-- PostgreSQL twin of migrations/0029_sse_c.sql.
ALTER TABLE multipart_uploads ADD COLUMN customer_key TEXT COLLATE "C";
