-- Idempotency-Key (contract 11.4): the first answer to a caller's key,
-- kept 24 hours and replayed for the same request. `state` is 'running'
-- while the first request runs (its claim lapses at `locked_until`, so a
-- crashed replica does not hold the key for ever), then 'done' with the
-- answer: status, the headers that matter (JSON), the body as sent (a
-- stream's events included).
CREATE TABLE idempotency_keys (
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    key          TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    state        TEXT NOT NULL,
    status       INTEGER,
    headers      TEXT,
    body         BYTEA,
    created_at   TIMESTAMP NOT NULL,
    locked_until TIMESTAMP NOT NULL,
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
