-- Full-text search over messages (contract 11.1): a stored tsvector of each
-- message's text as skein_search_text() makes it (unaccented, lowercase,
-- unspaced scripts split into single characters), with a GIN index. As a
-- generated column it changes in the transaction of every write that
-- changes a message. Items of the OpenAI dialect that are not messages
-- have none.
CREATE EXTENSION IF NOT EXISTS unaccent;

CREATE FUNCTION skein_search_text(text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
AS $$
    SELECT regexp_replace(
        lower(public.unaccent('public.unaccent'::regdictionary, $1)),
        '([\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff])',
        ' \1 ',
        'g')
$$;

ALTER TABLE messages ADD COLUMN search tsvector
    GENERATED ALWAYS AS (
        CASE WHEN kind = 'message' THEN to_tsvector('simple'::regconfig, skein_search_text(content)) END
    ) STORED;
CREATE INDEX messages_search ON messages USING gin (search);
