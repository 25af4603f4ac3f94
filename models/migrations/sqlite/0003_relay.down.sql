DROP TABLE relay_usage;
DROP TABLE relay_rate;
DROP TABLE relay_keys;
