-- Generations: counters that every change to a kind of row moves, by trigger, inside the
-- changing transaction, whichever process (the server, `kura user ...`) commits it. A server
-- keeps such rows in memory and reads these counters (a few microseconds) to know whether
-- what it remembers still holds (src/store/generations.rs).
--   identity: users (login, password, rights), groups, memberships, access keys, peer keys
--             (usage and quota columns of groups are not identity and do not move it)
--   locks:    WebDAV locks
--   settings: bucket settings (encryption, versioning policy, CORS, ...)
CREATE TABLE generations (
    name TEXT PRIMARY KEY,
    n    BIGINT NOT NULL
);
INSERT INTO generations (name, n) VALUES ('identity', 0), ('locks', 0), ('settings', 0);

CREATE TRIGGER identity_users_insert AFTER INSERT ON users
BEGIN UPDATE generations SET n = n + 1 WHERE name = 'identity'; END;
CREATE TRIGGER identity_users_update
AFTER UPDATE OF name, password_hash, is_admin, primary_group, can_create_buckets ON users
BEGIN UPDATE generations SET n = n + 1 WHERE name = 'identity'; END;
CREATE TRIGGER identity_users_delete AFTER DELETE ON users
BEGIN UPDATE generations SET n = n + 1 WHERE name = 'identity'; END;

CREATE TRIGGER identity_memberships_insert AFTER INSERT ON memberships
BEGIN UPDATE generations SET n = n + 1 WHERE name = 'identity'; END;
CREATE TRIGGER identity_memberships_update AFTER UPDATE ON memberships
BEGIN UPDATE generations SET n = n + 1 WHERE name = 'identity'; END;
CREATE TRIGGER identity_memberships_delete AFTER DELETE ON memberships
BEGIN UPDATE generations SET n = n + 1 WHERE name = 'identity'; END;

CREATE TRIGGER identity_groups_insert AFTER INSERT ON groups
BEGIN UPDATE generations SET n = n + 1 WHERE name = 'identity'; END;
CREATE TRIGGER identity_groups_update AFTER UPDATE OF name ON groups
BEGIN UPDATE generations SET n = n + 1 WHERE name = 'identity'; END;
CREATE TRIGGER identity_groups_delete AFTER DELETE ON groups
BEGIN UPDATE generations SET n = n + 1 WHERE name = 'identity'; END;

CREATE TRIGGER identity_keys_insert AFTER INSERT ON access_keys
BEGIN UPDATE generations SET n = n + 1 WHERE name = 'identity'; END;
CREATE TRIGGER identity_keys_update AFTER UPDATE ON access_keys
BEGIN UPDATE generations SET n = n + 1 WHERE name = 'identity'; END;
CREATE TRIGGER identity_keys_delete AFTER DELETE ON access_keys
BEGIN UPDATE generations SET n = n + 1 WHERE name = 'identity'; END;

CREATE TRIGGER identity_peer_keys_insert AFTER INSERT ON peer_keys
BEGIN UPDATE generations SET n = n + 1 WHERE name = 'identity'; END;
CREATE TRIGGER identity_peer_keys_delete AFTER DELETE ON peer_keys
BEGIN UPDATE generations SET n = n + 1 WHERE name = 'identity'; END;

CREATE TRIGGER locks_generation_insert AFTER INSERT ON locks
BEGIN UPDATE generations SET n = n + 1 WHERE name = 'locks'; END;
CREATE TRIGGER locks_generation_update AFTER UPDATE ON locks
BEGIN UPDATE generations SET n = n + 1 WHERE name = 'locks'; END;
CREATE TRIGGER locks_generation_delete AFTER DELETE ON locks
BEGIN UPDATE generations SET n = n + 1 WHERE name = 'locks'; END;

CREATE TRIGGER settings_generation_insert AFTER INSERT ON bucket_settings
BEGIN UPDATE generations SET n = n + 1 WHERE name = 'settings'; END;
CREATE TRIGGER settings_generation_update AFTER UPDATE ON bucket_settings
BEGIN UPDATE generations SET n = n + 1 WHERE name = 'settings'; END;
CREATE TRIGGER settings_generation_delete AFTER DELETE ON bucket_settings
BEGIN UPDATE generations SET n = n + 1 WHERE name = 'settings'; END;
