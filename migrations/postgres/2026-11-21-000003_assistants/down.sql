CREATE INDEX assistants_org ON assistants (organization_id, created_at);
DROP INDEX assistants_owner_created;
