-- activity.db, schema version 1: the decision log, the usage table and daemon
-- heartbeats. Written by the daemons' activity writers; read by saslgatectl.

CREATE TABLE decisions (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	at INTEGER NOT NULL,
	daemon TEXT NOT NULL,
	queue_id TEXT,
	instance TEXT,
	user TEXT,
	client TEXT,
	mech TEXT,
	mech_class TEXT,
	tls INTEGER NOT NULL DEFAULT 0,
	service TEXT,
	sender TEXT,
	outcome TEXT NOT NULL,
	policy TEXT,
	report_only TEXT,
	generation INTEGER
);

CREATE INDEX decisions_at ON decisions(at);
CREATE INDEX decisions_user ON decisions(user, at);

CREATE TABLE usage (
	user TEXT NOT NULL,
	mech TEXT NOT NULL,
	network TEXT NOT NULL,
	mech_class TEXT NOT NULL,
	first_seen INTEGER NOT NULL,
	last_seen INTEGER NOT NULL,
	count INTEGER NOT NULL,
	last_outcome TEXT NOT NULL,
	PRIMARY KEY (user, mech, network)
) WITHOUT ROWID;

CREATE TABLE heartbeats (
	program TEXT NOT NULL,
	host TEXT NOT NULL,
	pid INTEGER NOT NULL,
	started_at INTEGER NOT NULL,
	last_seen INTEGER NOT NULL,
	generation INTEGER,
	degraded INTEGER NOT NULL DEFAULT 0,
	degraded_reason TEXT,
	requests INTEGER NOT NULL DEFAULT 0,
	blocks INTEGER NOT NULL DEFAULT 0,
	allows INTEGER NOT NULL DEFAULT 0,
	would_blocks INTEGER NOT NULL DEFAULT 0,
	not_authenticated INTEGER NOT NULL DEFAULT 0,
	errors INTEGER NOT NULL DEFAULT 0,
	dropped INTEGER NOT NULL DEFAULT 0,
	rebuilds INTEGER NOT NULL DEFAULT 0,
	last_rebuild_us INTEGER NOT NULL DEFAULT 0,
	stopped INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (program, host, pid)
);
