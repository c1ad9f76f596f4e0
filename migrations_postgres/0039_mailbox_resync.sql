-- PostgreSQL twin of migrations/0039_mailbox_resync.sql. The copy of the old JSON list keeps
-- its integers only (SQLite: json_each ... WHERE type = 'integer'); text that is not JSON
-- yields nothing (kura_json, 0016).
CREATE TABLE mailbox_refused (
    bucket TEXT COLLATE "C" NOT NULL,
    peer   TEXT COLLATE "C" NOT NULL,
    lo     BIGINT NOT NULL,
    hi     BIGINT NOT NULL,
    PRIMARY KEY (bucket, peer, lo),
    FOREIGN KEY (bucket, peer) REFERENCES replications (bucket, peer) ON DELETE CASCADE
);
INSERT INTO mailbox_refused (bucket, peer, lo, hi)
    SELECT r.bucket, r.peer, (j #>> '{}')::BIGINT, (j #>> '{}')::BIGINT
    FROM replications r,
         jsonb_array_elements(CASE WHEN jsonb_typeof(kura_json(r.mailbox_refused)) = 'array'
                                   THEN kura_json(r.mailbox_refused) ELSE '[]'::jsonb END) AS j
    WHERE jsonb_typeof(j) = 'number' AND (j #>> '{}') ~ '^-?[0-9]+$'
    ON CONFLICT DO NOTHING;

ALTER TABLE replications ADD COLUMN mailbox_manifest BIGINT NOT NULL DEFAULT 0;
