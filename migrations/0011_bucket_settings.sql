-- Per-bucket protocol settings (S3 CORS rules today; later issues add their own names), one
-- row per bucket and setting, the value as JSON. A setting follows its bucket when the bucket
-- is renamed and goes with it when the bucket is deleted.
CREATE TABLE bucket_settings (
    bucket TEXT NOT NULL REFERENCES entries (path) ON DELETE CASCADE ON UPDATE CASCADE,
    name   TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (bucket, name)
);

-- Entries whose S3 ACL grants AllUsers READ (a bucket or an object marked public-read): with
-- the mode's "other" bits they let anonymous GET and HEAD read, unless the bucket's public
-- access block ignores public ACLs. They follow their entry on rename and go with it.
CREATE TABLE public_reads (
    path TEXT PRIMARY KEY REFERENCES entries (path) ON DELETE CASCADE ON UPDATE CASCADE
);
