-- Model responses, kept so that previous_response_id can rebuild a
-- conversation: each row holds its request's stored inputs and its output.
CREATE TABLE responses (
    id                   TEXT PRIMARY KEY NOT NULL,
    organization_id      TEXT NOT NULL,
    user_id              TEXT NOT NULL,
    thread_id            TEXT,
    previous_response_id TEXT,
    model                TEXT NOT NULL,
    inputs               TEXT NOT NULL,
    output_text          TEXT NOT NULL,
    usage                TEXT NOT NULL,
    metadata             TEXT NOT NULL,
    created_at           TIMESTAMP NOT NULL
);
-- The retention sweeper deletes by age.
CREATE INDEX responses_created ON responses (created_at);
