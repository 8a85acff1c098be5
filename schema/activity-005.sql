-- activity.db, schema version 5: where each daemon's serving snapshot came
-- from, and when that policy was read, for saslgatectl status (the same
-- columns as fleet_heartbeats in schema/pg/policy-002.sql).
--   snapshot_source: 'postgresql' (built from DIR/policy-cache.db, refreshed
--   from PostgreSQL while connected), 'cache' (DIR/policy-cache.db while
--   PostgreSQL is unreachable) or 'policy.db' (the SQLite store); NULL in
--   rows written before this version.
--   snapshot_at: Unix seconds; see saslgatectl(8), status.

ALTER TABLE heartbeats ADD COLUMN snapshot_source TEXT;
ALTER TABLE heartbeats ADD COLUMN snapshot_at INTEGER;
