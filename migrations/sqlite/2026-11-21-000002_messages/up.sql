-- Per-thread message sequence and the busy lease of a running response.
ALTER TABLE threads ADD COLUMN last_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE threads ADD COLUMN lease_id TEXT;
ALTER TABLE threads ADD COLUMN lease_expires_at TIMESTAMP;

CREATE TABLE messages (
    pk          INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    id          TEXT NOT NULL,
    thread_pk   BIGINT NOT NULL REFERENCES threads(pk) ON DELETE CASCADE,
    seq         BIGINT NOT NULL,
    role        TEXT NOT NULL,
    content     TEXT NOT NULL,
    token_count BIGINT NOT NULL,
    metadata    TEXT NOT NULL,
    attachments TEXT NOT NULL,
    response_id TEXT,
    model       TEXT,
    created_at  TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX messages_id ON messages (id);
-- Listing in order and reading history newest-first both walk this index.
CREATE UNIQUE INDEX messages_thread_seq ON messages (thread_pk, seq);
