-- Key operations (SPEC §10): which kid seals new values, the key-check value
-- of every kid used so far, and the heartbeats of running servers.

-- key_state has at most one row: the kid every server seals new values
-- with. No row: a server uses the first key of its set (and records it).
CREATE TABLE key_state (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    active_kid   TEXT NOT NULL,
    activated_at DATETIME NOT NULL
);

-- One row per kid ever used: the hex HMAC-SHA256 of a fixed label under the
-- key, recorded the first time a server (or 'keys activate') uses the kid.
-- A key with the same kid and other bytes does not match.
CREATE TABLE key_checks (
    kid         TEXT PRIMARY KEY,
    check_value TEXT NOT NULL,
    recorded_at DATETIME NOT NULL
);

-- One row per running server, rewritten every heartbeat and removed on a
-- clean shutdown. keys is a JSON array of {"kid", "kcv"}; a server is live
-- while expires_at (its last heartbeat plus its live window) is ahead.
CREATE TABLE server_heartbeats (
    instance_id TEXT PRIMARY KEY,
    hostname    TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    version     TEXT NOT NULL,
    key_source  TEXT NOT NULL,
    keys        TEXT NOT NULL,
    active_kid  TEXT NOT NULL,
    started_at  DATETIME NOT NULL,
    last_seen   DATETIME NOT NULL,
    expires_at  DATETIME NOT NULL
);
CREATE INDEX server_heartbeats_expires ON server_heartbeats (expires_at);
