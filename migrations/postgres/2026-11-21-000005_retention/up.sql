-- The retention sweeper finds soft-deleted threads past their grace, and
-- threads expired by inactivity or age, without scanning the whole table.
CREATE INDEX threads_deleted_at ON threads (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX threads_updated_at ON threads (updated_at);
CREATE INDEX threads_created_at ON threads (created_at);
-- Purging a thread's responses.
CREATE INDEX responses_thread ON responses (organization_id, thread_id) WHERE thread_id IS NOT NULL;
