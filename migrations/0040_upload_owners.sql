-- Unfinished uploads (S3 multipart and tus) are bound to who started them, not to a name
-- (docs/web.md, "Resumable uploads"): every user has a random id, and an upload records the
-- id of its owner then. A user removed and added again under the same name is someone else,
-- with another id: the uploads of the first are not hers (removing a user drops them too).
ALTER TABLE users ADD COLUMN uid TEXT;
UPDATE users SET uid = lower(hex(randomblob(16)));
ALTER TABLE multipart_uploads ADD COLUMN owner_uid TEXT;
UPDATE multipart_uploads SET owner_uid = (SELECT uid FROM users WHERE users.name = multipart_uploads.owner);
-- open uploads are counted per owner (uploads_max_per_user)
CREATE INDEX multipart_uploads_owner ON multipart_uploads (owner);
