-- Shared rate-limit budgets exist on PostgreSQL only: SQLite is one
-- process, which counts budgets in memory. Kept so that both trees list
-- the same migrations.
SELECT 1;
