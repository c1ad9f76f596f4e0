-- S3: per-user access keys, stored object headers, multipart uploads.

-- The secret is sealed with ChaCha20-Poly1305 under the server key in <data_dir>/secret.key
-- (never stored in plain text here): base64(nonce || ciphertext), the key id as associated data.
CREATE TABLE access_keys (
    id         TEXT PRIMARY KEY,
    owner      TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    secret_enc TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX access_keys_owner ON access_keys (owner);

-- Headers stored with an object (user metadata, Content-Disposition, ..., checksums) as JSON.
ALTER TABLE entries ADD COLUMN headers TEXT;

CREATE TABLE multipart_uploads (
    id         TEXT PRIMARY KEY,
    path       TEXT NOT NULL,
    owner      TEXT NOT NULL,
    headers    TEXT,
    created_ms BIGINT NOT NULL
);

CREATE TABLE multipart_parts (
    upload_id   TEXT NOT NULL REFERENCES multipart_uploads (id) ON DELETE CASCADE,
    part_number INTEGER NOT NULL,
    size        BIGINT NOT NULL,
    etag        TEXT NOT NULL,
    mtime_ms    BIGINT NOT NULL,
    PRIMARY KEY (upload_id, part_number)
);
