DROP INDEX messages_thread_id;
CREATE UNIQUE INDEX messages_id ON messages (id);
DROP TABLE thread_segments;
ALTER TABLE threads DROP COLUMN inherited_upto;
ALTER TABLE threads DROP COLUMN forked_from;
