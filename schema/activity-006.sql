-- activity.db, schema version 6: the spool of a fleet host. With a
-- PostgreSQL store (--store URI) the daemons' writer adds, in the same
-- transaction as what it records here, a spool row naming the decisions it
-- stored (their ids) and the usage it added (fleet_spool_usage); the
-- daemon's deliverer (lib/fleet_ship.c) copies them to PostgreSQL's fleet_*
-- tables in order and deletes them here once PostgreSQL has committed them.
-- On a single host (policy.db) nothing is written to these tables.

-- seq is the delivery order, never given twice (AUTOINCREMENT), so that
-- PostgreSQL's fleet_delivery.last_seq says which rows it has. host is the
-- host name the writer's daemon reports as: two daemons sharing this file
-- under different names each deliver their own rows.
CREATE TABLE fleet_spool (
	seq INTEGER PRIMARY KEY AUTOINCREMENT,
	host TEXT NOT NULL,
	first_id INTEGER NOT NULL, -- the decisions first_id .. first_id + n - 1 ...
	n INTEGER NOT NULL,        -- ... in decision_batches
	at INTEGER NOT NULL
);

-- The usage a spool row adds, as the writer added it to usage.
CREATE TABLE fleet_spool_usage (
	seq INTEGER NOT NULL,
	user TEXT NOT NULL,
	mech TEXT NOT NULL,
	network TEXT NOT NULL,
	mech_class TEXT NOT NULL,
	first_seen INTEGER NOT NULL,
	last_seen INTEGER NOT NULL,
	count INTEGER NOT NULL,
	last_outcome TEXT NOT NULL,
	last_client TEXT,
	last_tls INTEGER,
	last_service TEXT,
	PRIMARY KEY (seq, user, mech, network)
) WITHOUT ROWID;

-- One row. token names this file in fleet_delivery (with its directory):
-- an activity.db made anew starts its seq at 1 again, and must not be taken
-- for the one PostgreSQL has seen. next_id: decision ids are never given
-- twice on a fleet host, even after a prune has emptied the log
-- (PostgreSQL keeps batches by host and id). pending: the decisions the
-- spool holds (for fleet_spool_max).
CREATE TABLE fleet_spool_state (
	token TEXT NOT NULL,
	next_id INTEGER NOT NULL,
	pending INTEGER NOT NULL
);

INSERT INTO fleet_spool_state (token, next_id, pending)
VALUES (lower(hex(randomblob(8))), 1, 0);
