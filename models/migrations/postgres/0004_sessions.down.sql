DROP TABLE registrations;
ALTER TABLE refresh_tokens ADD COLUMN replaced_by TEXT;
ALTER TABLE refresh_tokens ADD COLUMN retried BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE refresh_tokens DROP COLUMN uses;
DROP INDEX sessions_user_last_used;
ALTER TABLE sessions DROP COLUMN user_agent;
