DROP INDEX threads_provisional;
ALTER TABLE threads DROP COLUMN provisional;
DROP TABLE response_events;
