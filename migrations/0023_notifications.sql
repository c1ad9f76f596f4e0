-- Event notifications (docs/operations.md): rules per bucket and prefix, a durable queue of
-- deliveries (one per rule and event, so an event is never queued twice), and how far the
-- audit trail, their source, has been read.
CREATE TABLE notify_rules (
    id            TEXT PRIMARY KEY NOT NULL,
    bucket        TEXT NOT NULL,
    prefix        TEXT NOT NULL DEFAULT '',
    -- JSON list of: created, deleted, restored, share_opened, quota, replication_failing.
    events        TEXT NOT NULL,
    webhook       TEXT,
    -- The webhook's HMAC key, sealed by the server's secret key.
    secret_sealed TEXT,
    email         TEXT,
    -- E-mail: 0 sends each event; N > 0 sends one digest every N minutes.
    digest_minutes BIGINT NOT NULL DEFAULT 0,
    -- "quota" events fire when the bucket's group is at or above this share of its quota.
    quota_percent BIGINT NOT NULL DEFAULT 90,
    created_ms    BIGINT NOT NULL
);

CREATE TABLE notify_queue (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    rule_id    TEXT NOT NULL REFERENCES notify_rules (id) ON DELETE CASCADE,
    event_id   TEXT NOT NULL,
    payload    TEXT NOT NULL,
    attempts   BIGINT NOT NULL DEFAULT 0,
    next_ms    BIGINT NOT NULL,
    last_error TEXT,
    -- 1: given up after too many attempts (kept for `kura notify list`).
    dead       INTEGER NOT NULL DEFAULT 0,
    created_ms BIGINT NOT NULL,
    UNIQUE (rule_id, event_id)
);
CREATE INDEX notify_queue_due ON notify_queue (dead, next_ms);

CREATE TABLE notify_cursor (
    one      INTEGER PRIMARY KEY CHECK (one = 1),
    audit_id BIGINT NOT NULL
);
INSERT INTO notify_cursor (one, audit_id) SELECT 1, COALESCE(MAX(id), 0) FROM audit;
