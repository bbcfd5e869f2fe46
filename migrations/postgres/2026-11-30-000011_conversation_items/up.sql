-- Items of the OpenAI dialect that are not messages (function_call,
-- function_call_output, reasoning, ...): kept in the thread's sequence
-- beside its messages, their JSON verbatim in `content`, their type in
-- `kind` ('message' for every message). The Freddy message endpoints read
-- `kind = 'message'` only; `item_count` counts the others, so that
-- `message_count` stays the number of messages while the thread's limit
-- bounds both together.
ALTER TABLE messages ADD COLUMN kind TEXT NOT NULL DEFAULT 'message';
ALTER TABLE threads ADD COLUMN item_count BIGINT NOT NULL DEFAULT 0;
