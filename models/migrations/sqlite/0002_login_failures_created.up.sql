-- Lets the periodic prune of old failures (created_at < window start) use an index.
CREATE INDEX login_failures_created ON login_failures (created_at);
