-- An attempt counts from the moment it is admitted; in_flight marks one
-- whose password is still being checked (it is deleted if it passes).
ALTER TABLE login_failures ADD COLUMN in_flight BOOLEAN NOT NULL DEFAULT FALSE;
-- Lets the periodic prune of old rows (created_at < window start) use an index.
CREATE INDEX login_failures_created ON login_failures (created_at);
