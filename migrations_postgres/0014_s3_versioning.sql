-- PostgreSQL twin of migrations/0014_s3_versioning.sql.
ALTER TABLE versions ADD COLUMN s3 BIGINT NOT NULL DEFAULT 0;
CREATE INDEX versions_s3_by_path ON versions (path) WHERE s3 = 1;
