-- PostgreSQL twin of migrations/0010_implicit_folders.sql.
ALTER TABLE entries ADD COLUMN implicit BIGINT NOT NULL DEFAULT 0;
