-- Assistants are private to their creator: gets and newest-first keyset pages
-- (created_at, id) walk this index. It supersedes assistants_org.
CREATE INDEX assistants_owner_created ON assistants (organization_id, created_by, created_at, id);
DROP INDEX assistants_org;
