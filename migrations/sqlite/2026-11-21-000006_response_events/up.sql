-- The events of each thread response, so that a client that lost its
-- stream can reconnect on any replica. One row holds a run of events
-- (deltas coalesced by time and size): `events` is a JSON array of
-- {"seq", "type", ...}; rows of a response are read in `pk` order.
CREATE TABLE response_events (
    pk          INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    thread_pk   BIGINT NOT NULL,
    response_id TEXT NOT NULL,
    first_seq   BIGINT NOT NULL,
    last_seq    BIGINT NOT NULL,
    events      TEXT NOT NULL,
    terminal    BOOLEAN NOT NULL,
    created_at  TIMESTAMP NOT NULL
);
-- The newest response of a thread, and a response's rows after a sequence.
CREATE INDEX response_events_thread ON response_events (thread_pk, pk);
-- The sweeper deletes events by age (the response TTL).
CREATE INDEX response_events_created ON response_events (created_at);

-- A thread created by a response's first use stays provisional (unlisted)
-- until that turn is saved; one whose turn died is removed once its lease
-- has lapsed.
ALTER TABLE threads ADD COLUMN provisional BOOLEAN NOT NULL DEFAULT 0;
CREATE INDEX threads_provisional ON threads (lease_expires_at) WHERE provisional;
