DROP INDEX responses_thread;
DROP INDEX threads_created_at;
DROP INDEX threads_updated_at;
DROP INDEX threads_deleted_at;
