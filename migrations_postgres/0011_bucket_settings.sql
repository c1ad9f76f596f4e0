-- PostgreSQL twin of migrations/0011_bucket_settings.sql.
CREATE TABLE bucket_settings (
    bucket TEXT COLLATE "C" NOT NULL REFERENCES entries (path) ON DELETE CASCADE ON UPDATE CASCADE,
    name   TEXT COLLATE "C" NOT NULL,
    value  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (bucket, name)
);

CREATE TABLE public_reads (
    path TEXT COLLATE "C" PRIMARY KEY REFERENCES entries (path) ON DELETE CASCADE ON UPDATE CASCADE
);
