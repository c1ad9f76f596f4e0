-- PostgreSQL twin of migrations/0016_search.sql (docs/search.md). SQLite keeps names and
-- descriptions in an FTS5 trigram table; here `search_text` is a plain table keyed by the
-- entry's `rowid` (an identity column of `entries`, 0001), searched through pg_trgm GIN
-- indexes over the folded text (accents removed by unaccent, then lower case), as FTS5's
-- `trigram case_sensitive 0 remove_diacritics 1` folds it. Tags are the same table. The
-- triggers of SQLite are one PL/pgSQL function; the JSON helpers treat text that is not JSON
-- as SQLite's json_valid() does (no description, no tags).
-- pg_trgm and unaccent are trusted extensions: the database's owner may create them.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS unaccent;

-- The headers as JSON, or NULL when they are not valid JSON (SQLite: json_valid).
CREATE FUNCTION kura_json(t TEXT) RETURNS JSONB LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN t::jsonb;
EXCEPTION WHEN others THEN
    RETURN NULL;
END $$;

-- An entry's own name (the last segment of its path).
CREATE FUNCTION kura_search_name(path TEXT, parent TEXT) RETURNS TEXT LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN parent = '/' THEN substr(path, 2) ELSE substr(path, length(parent) + 2) END
$$;

-- Text as the index compares it: accents removed, lower case by Unicode (ICU's root locale,
-- not the column's "C", which lowers ASCII only). unaccent() is STABLE because its dictionary
-- could change; naming the dictionary and pinning search_path makes this wrapper IMMUTABLE.
CREATE FUNCTION kura_fold(t TEXT) RETURNS TEXT LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path FROM CURRENT AS $$
    SELECT lower(unaccent('unaccent'::regdictionary, t) COLLATE "und-x-icu")
$$;

-- The (key, value) pairs under `x-amz-tagging` in the stored headers: a JSON list of pairs,
-- or a string holding one; anything else yields nothing.
CREATE FUNCTION kura_search_tags(headers TEXT) RETURNS TABLE (tag_key TEXT, tag_value TEXT)
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    tagging JSONB := kura_json(headers) -> 'x-amz-tagging';
BEGIN
    IF jsonb_typeof(tagging) = 'string' THEN
        tagging := kura_json(tagging #>> '{}');
    END IF;
    IF jsonb_typeof(tagging) = 'object' THEN
        SELECT jsonb_agg(o.value) INTO tagging FROM jsonb_each(tagging) AS o;
    END IF;
    IF jsonb_typeof(tagging) IS DISTINCT FROM 'array' THEN
        RETURN;
    END IF;
    RETURN QUERY
        SELECT t ->> 0, coalesce(t ->> 1, '')
        FROM jsonb_array_elements(tagging) AS t
        WHERE jsonb_typeof(t) = 'array' AND jsonb_typeof(t -> 0) = 'string';
END $$;

CREATE TABLE search_text (
    rowid BIGINT PRIMARY KEY,
    name  TEXT COLLATE "C",
    descr TEXT COLLATE "C"
);
CREATE INDEX search_text_name ON search_text USING gin (kura_fold(name) gin_trgm_ops);
CREATE INDEX search_text_descr ON search_text USING gin (kura_fold(descr) gin_trgm_ops);

CREATE TABLE search_tags (
    tag_key TEXT COLLATE "C" NOT NULL,
    tag_value TEXT COLLATE "C" NOT NULL,
    entry BIGINT NOT NULL,
    PRIMARY KEY (tag_key, tag_value, entry)
);
CREATE INDEX search_tags_entry ON search_tags (entry);
CREATE INDEX search_tags_key ON search_tags (tag_key, entry);

CREATE FUNCTION kura_search_index() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        DELETE FROM search_text WHERE rowid = OLD.rowid;
        DELETE FROM search_tags WHERE entry = OLD.rowid;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO search_text (rowid, name, descr) VALUES (
            NEW.rowid,
            kura_search_name(NEW.path, NEW.parent),
            kura_json(NEW.headers) ->> 'x-kura-description');
        INSERT INTO search_tags (tag_key, tag_value, entry)
            SELECT t.tag_key, t.tag_value, NEW.rowid FROM kura_search_tags(NEW.headers) AS t
            ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER search_insert AFTER INSERT ON entries
    FOR EACH ROW EXECUTE FUNCTION kura_search_index();
CREATE TRIGGER search_delete AFTER DELETE ON entries
    FOR EACH ROW EXECUTE FUNCTION kura_search_index();
-- Only a change of name (a move's own entry, not the rows below it) or of headers reindexes.
CREATE TRIGGER search_update AFTER UPDATE OF path, headers ON entries
    FOR EACH ROW
    WHEN (OLD.headers IS DISTINCT FROM NEW.headers
          OR kura_search_name(OLD.path, OLD.parent) IS DISTINCT FROM kura_search_name(NEW.path, NEW.parent))
    EXECUTE FUNCTION kura_search_index();

-- What exists already.
INSERT INTO search_text (rowid, name, descr)
    SELECT rowid, kura_search_name(path, parent), kura_json(headers) ->> 'x-kura-description'
    FROM entries;
INSERT INTO search_tags (tag_key, tag_value, entry)
    SELECT t.tag_key, t.tag_value, e.rowid FROM entries AS e, kura_search_tags(e.headers) AS t
    ON CONFLICT DO NOTHING;
