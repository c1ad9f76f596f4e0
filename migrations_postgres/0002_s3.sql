-- PostgreSQL twin of migrations/0002_s3.sql.

CREATE TABLE access_keys (
    id         TEXT COLLATE "C" PRIMARY KEY,
    owner      TEXT COLLATE "C" NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    secret_enc TEXT COLLATE "C" NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX access_keys_owner ON access_keys (owner);

ALTER TABLE entries ADD COLUMN headers TEXT COLLATE "C";

CREATE TABLE multipart_uploads (
    id         TEXT COLLATE "C" PRIMARY KEY,
    path       TEXT COLLATE "C" NOT NULL,
    owner      TEXT COLLATE "C" NOT NULL,
    headers    TEXT COLLATE "C",
    created_ms BIGINT NOT NULL
);

CREATE TABLE multipart_parts (
    upload_id   TEXT COLLATE "C" NOT NULL REFERENCES multipart_uploads (id) ON DELETE CASCADE,
    part_number BIGINT NOT NULL,
    size        BIGINT NOT NULL,
    etag        TEXT COLLATE "C" NOT NULL,
    mtime_ms    BIGINT NOT NULL,
    PRIMARY KEY (upload_id, part_number)
);
