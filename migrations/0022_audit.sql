-- The audit trail (docs/operations.md): who did what, from where, by which protocol, with
-- what outcome; written in the same transaction as the change it records.
CREATE TABLE audit (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    time_ms  BIGINT NOT NULL,
    -- The user (NULL: anonymous or the server itself).
    actor    TEXT,
    client   TEXT,
    -- webdav, s3, share, api, app, cli, system.
    protocol TEXT NOT NULL,
    -- create, overwrite, mkdir, delete, move, copy, restore, chmod, chown, sign_in,
    -- sign_in_failed, share_create, share_open, share_revoke, key_create, key_revoke,
    -- user_add, user_remove, user_modify, password, ...
    action   TEXT NOT NULL,
    path     TEXT,
    path2    TEXT,
    -- ok, failed.
    outcome  TEXT NOT NULL DEFAULT 'ok',
    detail   TEXT
);
CREATE INDEX audit_by_time ON audit (time_ms);
CREATE INDEX audit_by_actor ON audit (actor, id);
CREATE INDEX audit_by_path ON audit (path, id);
