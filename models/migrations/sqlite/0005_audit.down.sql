DROP TABLE audit_dedup;
DROP TABLE audit_events;
