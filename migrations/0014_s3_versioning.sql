-- The S3 versioning API (docs/versions.md, "S3 versioning"): which kept versions and delete
-- markers S3 clients see. A bucket's S3 state (Enabled, Suspended, never set) is its bucket
-- setting `s3_versioning`; rows kept while it was never set, null versions an S3 write
-- overwrote, and folder markers stay Kura's own (trash and `kura versions`), not S3's.
ALTER TABLE versions ADD COLUMN s3 INTEGER NOT NULL DEFAULT 0;
CREATE INDEX versions_s3_by_path ON versions (path) WHERE s3 = 1;
