-- PostgreSQL twin of migrations/0025_resumable_uploads.sql.
CREATE TABLE resumable_uploads (
    id        TEXT COLLATE "C" PRIMARY KEY NOT NULL REFERENCES multipart_uploads (id) ON DELETE CASCADE,
    length    BIGINT NOT NULL,
    touched_ms BIGINT NOT NULL
);
CREATE INDEX resumable_uploads_by_touch ON resumable_uploads (touched_ms);
