-- Schema version 3: a re-created activity.db keeps its decisions, and the
-- decision log costs PostgreSQL less.
--
-- id_offset: what the deliverer adds to the decision ids of one spool (one
-- activity.db of a host) in fleet_decision_batches. A new activity.db
-- numbers its decisions from 1 again; its fleet_delivery row, created at
-- its first delivery, takes the highest id the host has so far, so that its
-- batches never collide with the old ones (which ON CONFLICT would skip).
-- The rows of earlier spools keep 0: their ids are the host's own.
ALTER TABLE fleet_delivery ADD COLUMN id_offset bigint NOT NULL DEFAULT 0;

-- The batches are compressed with lz4 instead of pglz: at a fleet's rate
-- pglz was the largest share of PostgreSQL's CPU. A server built without
-- lz4 (or older than PostgreSQL 14) stores them uncompressed instead,
-- which costs disk but no CPU.
DO $$
BEGIN
	EXECUTE 'ALTER TABLE fleet_decision_batches ALTER COLUMN data SET COMPRESSION lz4';
EXCEPTION WHEN OTHERS THEN
	ALTER TABLE fleet_decision_batches ALTER COLUMN data SET STORAGE EXTERNAL;
END
$$;

-- Every delivery updates last_seen in fleet_usage: with an index on it no
-- update could be a HOT one (each inserted into both indexes). The usage
-- queries read every row of the range they report on anyway, as the SQLite
-- usage table (which has no such index) is read; room is kept on each page
-- for the updated rows.
DROP INDEX IF EXISTS fleet_usage_last_seen;
ALTER TABLE fleet_usage SET (fillfactor = 80);
