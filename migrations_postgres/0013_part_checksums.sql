-- PostgreSQL twin of migrations/0013_part_checksums.sql.
ALTER TABLE multipart_parts ADD COLUMN checksums TEXT COLLATE "C";
