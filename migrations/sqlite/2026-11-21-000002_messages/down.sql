DROP TABLE messages;
ALTER TABLE threads DROP COLUMN lease_expires_at;
ALTER TABLE threads DROP COLUMN lease_id;
ALTER TABLE threads DROP COLUMN last_seq;
