-- The audit trail (SPEC §9): one chain of security events in seq order.
-- seq is assigned by the application (the head's plus one, under the chain's
-- lock), so it has no gaps: a missing number is a removed row. mac is the
-- hex HMAC-SHA256, under the audit key, of prev_mac and the row's canonical
-- content (package audit). actor_id and target_id are no foreign keys: rows
-- outlive the users they name, keeping their IDs.
CREATE TABLE audit_events (
    seq         BIGINT PRIMARY KEY,
    id          UUID NOT NULL UNIQUE,
    at          TIMESTAMPTZ NOT NULL,
    action      TEXT NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('SUCCEEDED', 'FAILED', 'REFUSED')),
    actor_id    TEXT,
    target_type TEXT,
    target_id   TEXT,
    client_addr TEXT,
    request_id  TEXT,
    detail      TEXT,
    prev_mac    TEXT NOT NULL,
    mac         TEXT NOT NULL
);
CREATE INDEX audit_events_action ON audit_events (action, seq);
CREATE INDEX audit_events_actor ON audit_events (actor_id, seq);
CREATE INDEX audit_events_target ON audit_events (target_id, seq);
CREATE INDEX audit_events_at ON audit_events (at);

-- Events recorded once per window (the first throttled sign-in per email or
-- address): the SHA-256 of each deduplication key and when its window ends.
CREATE TABLE audit_dedup (
    key        TEXT PRIMARY KEY,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX audit_dedup_expires ON audit_dedup (expires_at);
