-- What a stored response was asked with (instructions, sampling, output
-- limit, truncation), as JSON, so that reading it back (OpenAI's
-- `GET /v1/responses/{id}`) answers what creating it answered.
ALTER TABLE responses ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';
