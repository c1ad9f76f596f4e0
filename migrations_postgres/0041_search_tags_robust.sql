-- PostgreSQL twin of migrations/0041_search_tags_robust.sql. Here `t -> 0` of an element that
-- is not an array is NULL, never an error, so 0016's function already skipped such elements;
-- it is written again with the same CASE as SQLite's triggers, so that no plan may ever
-- evaluate the second test on another type.
CREATE OR REPLACE FUNCTION kura_search_tags(headers TEXT) RETURNS TABLE (tag_key TEXT, tag_value TEXT)
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
        WHERE CASE WHEN jsonb_typeof(t) = 'array' THEN jsonb_typeof(t -> 0) = 'string' ELSE false END;
END $$;
