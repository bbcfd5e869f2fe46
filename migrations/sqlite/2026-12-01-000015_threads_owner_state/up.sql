-- A list filtered by a rare state (archived, locked) walks only that state's threads
-- of the owner, in page order.
CREATE INDEX threads_owner_state ON threads (organization_id, user_id, state, pk);
