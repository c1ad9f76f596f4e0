-- Resumable uploads (tus 1.0, docs/web.md): a multipart upload whose parts are appended in
-- order, one per PATCH, plus the length announced at creation and when it was last used
-- (an upload unused for a day expires). Its bytes are its parts in the staging area.
CREATE TABLE resumable_uploads (
    id        TEXT PRIMARY KEY NOT NULL REFERENCES multipart_uploads (id) ON DELETE CASCADE,
    length    BIGINT NOT NULL,
    touched_ms BIGINT NOT NULL
);
CREATE INDEX resumable_uploads_by_touch ON resumable_uploads (touched_ms);
