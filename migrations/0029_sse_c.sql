-- SSE-C (docs/encryption.md): a multipart upload started with a client's key records a salted
-- fingerprint of it ("<salt>:<HMAC-SHA256>", hex), so its parts and its completion must come
-- with that same key; NULL: an upload without one. Files and parts sealed under a client's key
-- record their data key wrapped by it in their `sealed` column ("c1:..."), beside the master
-- key's "v1:..." forms.
ALTER TABLE multipart_uploads ADD COLUMN customer_key TEXT;
