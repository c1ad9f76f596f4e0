-- Browser sign-in (docs/web.md): sessions behind a cookie, and optional TOTP two-factor
-- authentication per user.

-- One row per signed-in browser. The cookie carries a random token; only its SHA-256 is
-- stored, so a copy of the database signs no one in.
CREATE TABLE sessions (
    id_hash    TEXT PRIMARY KEY NOT NULL,
    user_name  TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    -- Sent back by the app in a header on every state-changing request (CSRF).
    csrf       TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    seen_ms    BIGINT NOT NULL,
    -- Where it was opened (shown to the user in the list of sessions).
    client     TEXT,
    agent      TEXT
);
CREATE INDEX sessions_by_user ON sessions (user_name);

-- The TOTP secret (sealed by the vault; NULL: two-factor authentication off), and the
-- SHA-256 of each unused recovery code, as a JSON list, and the last time step a code was
-- accepted for (a code is good once).
ALTER TABLE users ADD COLUMN totp_sealed TEXT;
ALTER TABLE users ADD COLUMN totp_recovery TEXT;
ALTER TABLE users ADD COLUMN totp_step BIGINT;
