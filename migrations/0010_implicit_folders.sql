-- Folders made only as the parents of S3 keys (implicit = 1) are removed with their last entry,
-- as prefixes vanish in S3; folders made on purpose (MKCOL, a `dir/` marker, mkdir) keep 0.
ALTER TABLE entries ADD COLUMN implicit INTEGER NOT NULL DEFAULT 0;
