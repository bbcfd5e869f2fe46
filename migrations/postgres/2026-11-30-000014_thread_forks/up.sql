-- Forks (contract 11.2). A fork shares its parent's history instead of
-- copying it: `thread_segments` says which stored rows of other threads a
-- thread shows below its own (the rows of `source_pk` with
-- `after_seq < seq <= upto_seq`), and `inherited_upto` is the highest
-- sequence number it inherits (its own messages come after it; NULL: it
-- inherits nothing). A write that would change shared rows (edit, delete,
-- rewind, purge) first copies them into every thread that shows them
-- (docs/architecture.md, "Forks"). `forked_from` is what the API shows
-- (JSON: {"thread_id", "message_id"}) and never changes.
ALTER TABLE threads ADD COLUMN forked_from TEXT;
ALTER TABLE threads ADD COLUMN inherited_upto BIGINT;

CREATE TABLE thread_segments (
    thread_pk BIGINT NOT NULL REFERENCES threads(pk) ON DELETE CASCADE,
    source_pk BIGINT NOT NULL,
    after_seq BIGINT NOT NULL,
    upto_seq  BIGINT NOT NULL,
    PRIMARY KEY (thread_pk, source_pk)
);
-- "Who shows these rows?", asked before shared rows change.
CREATE INDEX thread_segments_source ON thread_segments (source_pk, upto_seq);

-- A fork holds copies of its parent's messages under the same ids once
-- they are copied: message ids are unique per thread, not across threads.
DROP INDEX messages_id;
CREATE UNIQUE INDEX messages_thread_id ON messages (thread_pk, id);
