-- A value sealed with the server key (`secret.key`) the database was first used with: a
-- gateway (or a command) holding another key is refused at start, instead of starting and
-- failing to unseal the access keys the others made (docs/scale-out.md). One row at most.
CREATE TABLE server_key_check (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    sealed TEXT NOT NULL
);
