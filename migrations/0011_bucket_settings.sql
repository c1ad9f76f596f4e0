-- Per-bucket protocol settings (S3 CORS rules today; later issues add their own names), one
-- row per bucket and setting, the value as JSON. A setting follows its bucket when the bucket
-- is renamed and goes with it when the bucket is deleted.
CREATE TABLE bucket_settings (
    bucket TEXT NOT NULL REFERENCES entries (path) ON DELETE CASCADE ON UPDATE CASCADE,
    name   TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (bucket, name)
);
