-- PostgreSQL's index for the Freddy message routes' plan; SQLite's planner
-- walks messages_thread_seq for them without statistics. Kept so that both
-- trees list the same migrations.
SELECT 1;
