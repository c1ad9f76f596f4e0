-- Encryption at rest (docs/encryption.md): a file whose stored bytes are sealed records its
-- data key wrapped by a master key ("v1:<key id>:<file id>:<wrapped>"); NULL: plain bytes.
-- Kept versions and trashed files keep the wrapped key of their bytes.
ALTER TABLE entries ADD COLUMN sealed TEXT;
ALTER TABLE versions ADD COLUMN sealed TEXT;
-- multipart parts of an encrypted bucket's upload wait sealed, each with its own key
ALTER TABLE multipart_parts ADD COLUMN sealed TEXT;
CREATE INDEX entries_sealed_key ON entries (substr(sealed, 4, 16)) WHERE sealed IS NOT NULL;
CREATE INDEX versions_sealed_key ON versions (substr(sealed, 4, 16)) WHERE sealed IS NOT NULL;
