DROP INDEX login_failures_created;
ALTER TABLE login_failures DROP COLUMN in_flight;
