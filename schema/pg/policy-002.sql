-- Schema version 2: the fleet's activity. Each host's daemons keep writing
-- their local activity.db (DIR/activity.db) as on a single host; it is also
-- the spool: what they wrote is delivered here in order, and fleet_delivery
-- keeps, per host and activity.db, the last delivered sequence number,
-- updated in the same transaction as the rows it covers, so that a delivery
-- is counted exactly once even when the host crashes between PostgreSQL's
-- commit and its own bookkeeping.
--
-- User names, batches and the other texts a client chose are bytea: they
-- are kept byte for byte as they were submitted, invalid UTF-8 included,
-- which a PostgreSQL text column refuses.
--
-- The daemons' role (saslgate_daemon) may read these tables and append or
-- update rows in them, never delete; the policy tables stay read-only to it.

CREATE TABLE fleet_delivery (
	host text NOT NULL,
	spool text NOT NULL,         -- which activity.db of the host (its directory)
	last_seq bigint NOT NULL,    -- the highest spool sequence delivered
	delivered_at bigint NOT NULL,
	PRIMARY KEY (host, spool)
);

-- The decision log: the batches of lib/decision_batch.c, as the host wrote
-- them; id is the batch's first decision id on that host.
CREATE TABLE fleet_decision_batches (
	host text NOT NULL,
	id bigint NOT NULL,
	daemon text NOT NULL,
	first_at bigint NOT NULL,
	last_at bigint NOT NULL,
	n integer NOT NULL,
	data bytea NOT NULL,
	PRIMARY KEY (host, id)
);

CREATE INDEX fleet_decision_batches_last_at ON fleet_decision_batches (last_at);

-- The usage table, one row per host, user, mechanism and client network.
CREATE TABLE fleet_usage (
	host text NOT NULL,
	user_name bytea NOT NULL,
	mech text NOT NULL,
	network text NOT NULL,
	mech_class text NOT NULL,
	first_seen bigint NOT NULL,
	last_seen bigint NOT NULL,
	count bigint NOT NULL,
	last_outcome text NOT NULL,
	last_client text,
	last_tls integer,
	last_service text,
	PRIMARY KEY (user_name, mech, network, host)
);

CREATE INDEX fleet_usage_last_seen ON fleet_usage (last_seen);

CREATE TABLE fleet_heartbeats (
	program text NOT NULL,
	host text NOT NULL,
	pid bigint NOT NULL,
	started_at bigint NOT NULL,
	last_seen bigint NOT NULL,
	generation bigint,
	degraded integer NOT NULL DEFAULT 0,
	degraded_reason text,
	requests bigint NOT NULL DEFAULT 0,
	blocks bigint NOT NULL DEFAULT 0,
	allows bigint NOT NULL DEFAULT 0,
	would_blocks bigint NOT NULL DEFAULT 0,
	not_authenticated bigint NOT NULL DEFAULT 0,
	errors bigint NOT NULL DEFAULT 0,
	dropped bigint NOT NULL DEFAULT 0,
	rebuilds bigint NOT NULL DEFAULT 0,
	last_rebuild_us bigint NOT NULL DEFAULT 0,
	stopped integer NOT NULL DEFAULT 0,
	snapshot_source text,        -- 'postgresql', 'cache' or 'policy.db'
	snapshot_at bigint,          -- when the serving snapshot's policy was read
	PRIMARY KEY (program, host, pid)
);

CREATE TABLE fleet_auth_results (
	program text NOT NULL,
	host text NOT NULL,
	pid bigint NOT NULL,
	service text NOT NULL,
	mech_class text NOT NULL,
	result text NOT NULL,
	count bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (program, host, pid, service, mech_class, result)
);

DO $$
DECLARE
	t text;
BEGIN
	IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'saslgate_daemon') THEN
		FOREACH t IN ARRAY ARRAY['fleet_delivery', 'fleet_decision_batches', 'fleet_usage',
		                         'fleet_heartbeats', 'fleet_auth_results'] LOOP
			EXECUTE format('GRANT SELECT, INSERT, UPDATE ON public.%I TO saslgate_daemon', t);
			EXECUTE format('REVOKE DELETE, TRUNCATE ON public.%I FROM saslgate_daemon', t);
		END LOOP;
	END IF;
END
$$;
