-- PostgreSQL twin of migrations/0040_upload_owners.sql (random ids: gen_random_uuid's 32
-- hex digits, as SQLite's lower(hex(randomblob(16))) gives).
ALTER TABLE users ADD COLUMN uid TEXT COLLATE "C";
UPDATE users SET uid = replace(gen_random_uuid()::text, '-', '');
ALTER TABLE multipart_uploads ADD COLUMN owner_uid TEXT COLLATE "C";
UPDATE multipart_uploads SET owner_uid = (SELECT uid FROM users WHERE users.name = multipart_uploads.owner);
-- open uploads are counted per owner (uploads_max_per_user)
CREATE INDEX multipart_uploads_owner ON multipart_uploads (owner);
