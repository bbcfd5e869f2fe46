DROP INDEX messages_thread_kind_seq;
