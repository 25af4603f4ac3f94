-- Relay keys (SPEC §8): an application's key for one credential of its owner,
-- stored only as the SHA-256 of its value.
CREATE TABLE relay_keys (
    id                  UUID PRIMARY KEY,
    user_id             UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id       UUID NOT NULL REFERENCES cloud_credentials (id) ON DELETE CASCADE,
    name                TEXT NOT NULL,
    secret_hash         TEXT NOT NULL UNIQUE,
    secret_hint         TEXT NOT NULL,
    allowed_models      TEXT,
    requests_per_minute INTEGER,
    created_at          TIMESTAMPTZ NOT NULL,
    expires_at          TIMESTAMPTZ,
    revoked_at          TIMESTAMPTZ
);
CREATE INDEX relay_keys_credential ON relay_keys (credential_id, created_at);
CREATE INDEX relay_keys_user ON relay_keys (user_id, created_at);

-- Requests per relay key per minute (Unix time / 60), for requestsPerMinute.
CREATE TABLE relay_rate (
    relay_key_id UUID NOT NULL REFERENCES relay_keys (id) ON DELETE CASCADE,
    minute       BIGINT NOT NULL,
    n            BIGINT NOT NULL,
    PRIMARY KEY (relay_key_id, minute)
);

-- Usage per credential, relay key ('' for the owner's browser path) and UTC day.
-- relay_key_id is no foreign key: a revoked key's usage stays in its credential's totals.
CREATE TABLE relay_usage (
    credential_id UUID NOT NULL REFERENCES cloud_credentials (id) ON DELETE CASCADE,
    relay_key_id  TEXT NOT NULL,
    day           TEXT NOT NULL,
    requests      BIGINT NOT NULL DEFAULT 0,
    errors        BIGINT NOT NULL DEFAULT 0,
    input_tokens  BIGINT NOT NULL DEFAULT 0,
    output_tokens BIGINT NOT NULL DEFAULT 0,
    last_used_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (credential_id, relay_key_id, day)
);
CREATE INDEX relay_usage_key ON relay_usage (relay_key_id, day);
