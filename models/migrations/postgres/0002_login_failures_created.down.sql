DROP INDEX login_failures_created;
