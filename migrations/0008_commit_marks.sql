-- The last journaled commit of each process (src/vfs/journal.rs): written in the commit's own
-- transaction, so that at start a journal left on disk tells whether its commit happened.
CREATE TABLE commit_marks (
    owner TEXT PRIMARY KEY NOT NULL,
    seq TEXT NOT NULL
);
