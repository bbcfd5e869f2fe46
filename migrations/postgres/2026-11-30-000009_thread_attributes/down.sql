DROP TRIGGER threads_changed ON threads;
DROP FUNCTION skein_thread_changed();
DROP FUNCTION skein_feed_horizon(TEXT);
DROP TRIGGER threads_title_grams_delete ON threads;
DROP TRIGGER threads_title_grams_update ON threads;
DROP TRIGGER threads_title_grams_insert ON threads;
DROP FUNCTION skein_title_grams();
DROP TABLE title_grams;
DROP INDEX threads_changes;
DROP INDEX threads_unread;
DROP INDEX threads_incognito;
DROP INDEX threads_workflow;
ALTER TABLE threads
    DROP COLUMN workflow_id,
    DROP COLUMN is_incognito,
    DROP COLUMN expected_deletion_at,
    DROP COLUMN title_folded,
    DROP COLUMN unread,
    DROP COLUMN last_read_at,
    DROP COLUMN changed_us;
