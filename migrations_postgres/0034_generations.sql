-- PostgreSQL twin of migrations/0034_generations.sql: the same counters and the same triggers
-- (row triggers, as SQLite's), each calling one function with the counter's name. Under
-- concurrent writers the UPDATE of a counter's row locks it until COMMIT, so transactions that
-- move the same counter queue behind each other (docs/scale-out.md, "Generations").
CREATE TABLE generations (
    name TEXT COLLATE "C" PRIMARY KEY,
    n    BIGINT NOT NULL
);
INSERT INTO generations (name, n) VALUES ('identity', 0), ('locks', 0), ('settings', 0);

CREATE FUNCTION kura_generation_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE generations SET n = n + 1 WHERE name = TG_ARGV[0];
    RETURN NULL;
END $$;

CREATE TRIGGER identity_users_insert AFTER INSERT ON users
    FOR EACH ROW EXECUTE FUNCTION kura_generation_bump('identity');
CREATE TRIGGER identity_users_update AFTER UPDATE OF name, password_hash, is_admin, primary_group, can_create_buckets ON users
    FOR EACH ROW EXECUTE FUNCTION kura_generation_bump('identity');
CREATE TRIGGER identity_users_delete AFTER DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION kura_generation_bump('identity');
CREATE TRIGGER identity_memberships_insert AFTER INSERT ON memberships
    FOR EACH ROW EXECUTE FUNCTION kura_generation_bump('identity');
CREATE TRIGGER identity_memberships_update AFTER UPDATE ON memberships
    FOR EACH ROW EXECUTE FUNCTION kura_generation_bump('identity');
CREATE TRIGGER identity_memberships_delete AFTER DELETE ON memberships
    FOR EACH ROW EXECUTE FUNCTION kura_generation_bump('identity');
CREATE TRIGGER identity_groups_insert AFTER INSERT ON groups
    FOR EACH ROW EXECUTE FUNCTION kura_generation_bump('identity');
CREATE TRIGGER identity_groups_update AFTER UPDATE OF name ON groups
    FOR EACH ROW EXECUTE FUNCTION kura_generation_bump('identity');
CREATE TRIGGER identity_groups_delete AFTER DELETE ON groups
    FOR EACH ROW EXECUTE FUNCTION kura_generation_bump('identity');
CREATE TRIGGER identity_keys_insert AFTER INSERT ON access_keys
    FOR EACH ROW EXECUTE FUNCTION kura_generation_bump('identity');
CREATE TRIGGER identity_keys_update AFTER UPDATE ON access_keys
    FOR EACH ROW EXECUTE FUNCTION kura_generation_bump('identity');
CREATE TRIGGER identity_keys_delete AFTER DELETE ON access_keys
    FOR EACH ROW EXECUTE FUNCTION kura_generation_bump('identity');
CREATE TRIGGER identity_peer_keys_insert AFTER INSERT ON peer_keys
    FOR EACH ROW EXECUTE FUNCTION kura_generation_bump('identity');
CREATE TRIGGER identity_peer_keys_delete AFTER DELETE ON peer_keys
    FOR EACH ROW EXECUTE FUNCTION kura_generation_bump('identity');
CREATE TRIGGER locks_generation_insert AFTER INSERT ON locks
    FOR EACH ROW EXECUTE FUNCTION kura_generation_bump('locks');
CREATE TRIGGER locks_generation_update AFTER UPDATE ON locks
    FOR EACH ROW EXECUTE FUNCTION kura_generation_bump('locks');
CREATE TRIGGER locks_generation_delete AFTER DELETE ON locks
    FOR EACH ROW EXECUTE FUNCTION kura_generation_bump('locks');
CREATE TRIGGER settings_generation_insert AFTER INSERT ON bucket_settings
    FOR EACH ROW EXECUTE FUNCTION kura_generation_bump('settings');
CREATE TRIGGER settings_generation_update AFTER UPDATE ON bucket_settings
    FOR EACH ROW EXECUTE FUNCTION kura_generation_bump('settings');
CREATE TRIGGER settings_generation_delete AFTER DELETE ON bucket_settings
    FOR EACH ROW EXECUTE FUNCTION kura_generation_bump('settings');
