-- S3 object lock (docs/versions.md, "Object lock"): the retention and legal hold of one version,
-- by its version id (which a version keeps from current to noncurrent, and across a MOVE). A
-- locked version is never destroyed: permanent deletes are refused and the policy's purges
-- skip it. A bucket's lock configuration is its bucket setting `object_lock`.
CREATE TABLE object_locks (
    version_id TEXT PRIMARY KEY NOT NULL,
    -- 'GOVERNANCE' or 'COMPLIANCE' with `until_ms`; NULL: no retention.
    mode       TEXT,
    until_ms   BIGINT,
    legal_hold INTEGER NOT NULL DEFAULT 0
);
