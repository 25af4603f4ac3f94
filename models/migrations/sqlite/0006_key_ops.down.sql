DROP TABLE server_heartbeats;
DROP TABLE key_checks;
DROP TABLE key_state;
