-- Sessions users can see: the user agent of each sign-in.
ALTER TABLE sessions ADD COLUMN user_agent TEXT;
CREATE INDEX sessions_user_last_used ON sessions (user_id, last_used_at);

-- Refresh within the grace window: how many times a token was used (the
-- first use and the retries within the window, at most 10). Each use gets a
-- refresh token of its own, so the successor is no longer one token.
ALTER TABLE refresh_tokens ADD COLUMN uses INTEGER NOT NULL DEFAULT 0;
UPDATE refresh_tokens SET uses = 1 WHERE used_at IS NOT NULL;
ALTER TABLE refresh_tokens DROP COLUMN replaced_by;
ALTER TABLE refresh_tokens DROP COLUMN retried;

-- Registrations per client address (CLOUDKEYS_REGISTER_MAX_PER_ADDR).
CREATE TABLE registrations (
    addr       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX registrations_addr ON registrations (addr, created_at);
