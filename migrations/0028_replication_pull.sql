-- Outbound-only nodes (docs/replication.md, "Pull"): a peer this node pulls from (it cannot
-- reach us), and per rule how far this node has applied that peer's journal (its cursor,
-- a `journal.seq` on the peer; stored after each applied entry, so a restart resumes).
ALTER TABLE peers ADD COLUMN pull INTEGER NOT NULL DEFAULT 0;
ALTER TABLE replications ADD COLUMN pulled BIGINT NOT NULL DEFAULT 0;
