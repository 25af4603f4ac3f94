CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    is_admin      BOOLEAN NOT NULL DEFAULT FALSE,
    status        TEXT NOT NULL CHECK (status IN ('PENDING', 'APPROVED', 'DISABLED')),
    created_at    DATETIME NOT NULL,
    updated_at    DATETIME NOT NULL,
    approved_at   DATETIME,
    approved_by   TEXT REFERENCES users (id) ON DELETE SET NULL
);
CREATE INDEX users_created ON users (created_at, id);
CREATE INDEX users_status_created ON users (status, created_at, id);

-- One row per sign-in (a refresh-token family); its id is the access token's sid.
CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_addr  TEXT NOT NULL DEFAULT '',
    created_at   DATETIME NOT NULL,
    last_used_at DATETIME NOT NULL,
    expires_at   DATETIME NOT NULL,
    revoked_at   DATETIME
);
CREATE INDEX sessions_user ON sessions (user_id);

-- Every refresh token ever issued, by the SHA-256 of its value only.
CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    session_id  TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at  DATETIME NOT NULL,
    expires_at  DATETIME NOT NULL,
    used_at     DATETIME,
    replaced_by TEXT,
    retried     BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

-- Failed sign-ins, counted per normalised email and per client address.
CREATE TABLE login_failures (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    scope      TEXT NOT NULL CHECK (scope IN ('email', 'addr')),
    key        TEXT NOT NULL,
    created_at DATETIME NOT NULL
);
CREATE INDEX login_failures_key ON login_failures (scope, key, created_at);

CREATE TABLE cloud_credentials (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    backend_type TEXT NOT NULL,
    api_type     TEXT NOT NULL,
    base_url     TEXT,
    api_key_jwe  TEXT NOT NULL,
    key_id       TEXT NOT NULL,
    created_at   DATETIME NOT NULL,
    updated_at   DATETIME NOT NULL,
    UNIQUE (user_id, name)
);
CREATE INDEX cloud_credentials_key_id ON cloud_credentials (key_id);
