CREATE TABLE organizations (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    created_at  TIMESTAMP NOT NULL
);

CREATE TABLE users (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    created_at  TIMESTAMP NOT NULL
);

CREATE TABLE memberships (
    organization_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at      TIMESTAMP NOT NULL,
    PRIMARY KEY (organization_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

CREATE TABLE api_keys (
    id              TEXT PRIMARY KEY NOT NULL,
    prefix          TEXT NOT NULL,
    secret_hash     TEXT NOT NULL,
    organization_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name            TEXT,
    created_at      TIMESTAMP NOT NULL,
    last_used_at    TIMESTAMP,
    revoked_at      TIMESTAMP
);
CREATE UNIQUE INDEX api_keys_prefix ON api_keys (prefix);

CREATE TABLE assistants (
    id              TEXT PRIMARY KEY NOT NULL,
    organization_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    created_by      TEXT NOT NULL,
    name            TEXT NOT NULL,
    instructions    TEXT,
    model           TEXT,
    temperature     DOUBLE PRECISION,
    metadata        TEXT NOT NULL,
    created_at      TIMESTAMP NOT NULL,
    updated_at      TIMESTAMP NOT NULL
);
CREATE INDEX assistants_org ON assistants (organization_id, created_at);

CREATE TABLE threads (
    pk              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id              TEXT NOT NULL,
    organization_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    title           TEXT,
    metadata        TEXT NOT NULL,
    assistant_id    TEXT,
    status          TEXT NOT NULL,
    state           TEXT NOT NULL,
    message_count   BIGINT NOT NULL DEFAULT 0,
    visible_in_ui   BOOLEAN NOT NULL,
    last_model_used TEXT,
    pinned_at       TIMESTAMP,
    created_at      TIMESTAMP NOT NULL,
    updated_at      TIMESTAMP NOT NULL,
    last_message_at TIMESTAMP,
    deleted_at      TIMESTAMP
);
-- Thread ids are unique per organization; gets are one lookup on this index.
CREATE UNIQUE INDEX threads_org_id ON threads (organization_id, id);
-- Keyset pagination of one user's threads in creation order.
CREATE INDEX threads_owner_pk ON threads (organization_id, user_id, pk);
-- Counting a user's pinned threads.
CREATE INDEX threads_owner_pinned ON threads (organization_id, user_id) WHERE pinned_at IS NOT NULL;
