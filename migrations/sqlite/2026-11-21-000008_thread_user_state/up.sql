-- Per-user thread settings (contract 9.4) as one JSON object: model_override,
-- reasoning_override, disabled_tools, tool_conflict_choices. Threads are
-- private to their creator, so the thread's row holds its one user's state.
ALTER TABLE threads ADD COLUMN user_state TEXT;
