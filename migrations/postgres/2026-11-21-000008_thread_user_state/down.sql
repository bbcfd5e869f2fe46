ALTER TABLE threads DROP COLUMN user_state;
