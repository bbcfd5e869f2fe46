-- The Freddy message routes list a thread's messages (kind = 'message') in
-- sequence order. With `messages_thread_seq` alone, PostgreSQL walks that
-- index backwards only if it believes most rows are messages: on a table
-- it has no statistics for yet (a fresh database, until autovacuum has
-- analyzed it) it guessed 0.5%, read every row of the thread and sorted
-- them. This index gives that walk for any statistics.
CREATE INDEX messages_thread_kind_seq ON messages (thread_pk, kind, seq);
