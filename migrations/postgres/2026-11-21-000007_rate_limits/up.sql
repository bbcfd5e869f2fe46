-- Shared rate-limit budgets (GCRA): for each caller (`key:<id>` or
-- `user:<id>`), the theoretical arrival time of its next request, in UTC
-- by the database's clock, so that every replica counts against one
-- budget. A row whose time is past is the same as no row: the retention
-- sweeper deletes those. `tat` is not indexed, so its updates stay HOT;
-- the fill factor leaves room on each page for them.
CREATE TABLE rate_limits (
    identity TEXT PRIMARY KEY,
    tat TIMESTAMP NOT NULL
) WITH (fillfactor = 70);
