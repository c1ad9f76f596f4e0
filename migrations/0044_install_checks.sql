-- What the database was first used with, so that a gateway (or a command) set up otherwise is
-- refused at start instead of serving wrongly (docs/scale-out.md): `server_key`, a value
-- sealed with `secret.key`; `storage`, the storage the files are in (backend, bucket, root).
CREATE TABLE install_checks (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
