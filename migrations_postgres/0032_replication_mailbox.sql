-- PostgreSQL twin of migrations/0032_replication_mailbox.sql.
CREATE TABLE mailboxes (
    peer       TEXT COLLATE "C" PRIMARY KEY REFERENCES peers (name) ON DELETE CASCADE,
    bucket     TEXT COLLATE "C" NOT NULL,
    prefix     TEXT COLLATE "C" NOT NULL,
    secret_enc TEXT COLLATE "C" NOT NULL
);

CREATE TABLE mailbox_letters (
    bucket TEXT COLLATE "C" NOT NULL,
    peer   TEXT COLLATE "C" NOT NULL,
    seq    BIGINT NOT NULL,
    path   TEXT COLLATE "C" NOT NULL,
    body   TEXT COLLATE "C",
    PRIMARY KEY (bucket, peer, seq),
    FOREIGN KEY (bucket, peer) REFERENCES replications (bucket, peer) ON DELETE CASCADE
);
CREATE INDEX mailbox_letters_body ON mailbox_letters (bucket, peer, body);

CREATE TABLE mailbox_waiting (
    bucket TEXT COLLATE "C" NOT NULL,
    peer   TEXT COLLATE "C" NOT NULL,
    path   TEXT COLLATE "C" NOT NULL,
    seq    BIGINT NOT NULL,
    PRIMARY KEY (bucket, peer, path),
    FOREIGN KEY (bucket, peer) REFERENCES replications (bucket, peer) ON DELETE CASCADE
);

ALTER TABLE replications ADD COLUMN mailbox_sent BIGINT NOT NULL DEFAULT 0;
ALTER TABLE replications ADD COLUMN mailbox_acked BIGINT NOT NULL DEFAULT 0;
ALTER TABLE replications ADD COLUMN mailbox_redone BIGINT NOT NULL DEFAULT 0;
ALTER TABLE replications ADD COLUMN mailbox_refused TEXT COLLATE "C" NOT NULL DEFAULT '[]';
