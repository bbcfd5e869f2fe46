-- Reverting loses what forks show of other threads (their segments), and
-- copies share ids across threads: the index on ids is no longer unique.
DROP INDEX messages_thread_id;
CREATE INDEX messages_id ON messages (id);
DROP TABLE thread_segments;
ALTER TABLE threads DROP COLUMN inherited_upto;
ALTER TABLE threads DROP COLUMN forked_from;
