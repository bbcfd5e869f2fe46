DROP TABLE threads;
DROP TABLE assistants;
DROP TABLE api_keys;
DROP TABLE memberships;
DROP TABLE users;
DROP TABLE organizations;
