-- activity.db, schema version 4: Dovecot's after-auth reports.
-- saslgate-policyd's http: endpoints answer Dovecot's auth policy requests;
-- after each login Dovecot reports its result (POST /?command=report). The
-- daemon counts them per service, mechanism class and result (success,
-- failure, policy_reject) and writes its totals since start with each
-- heartbeat, one row per key, as the heartbeat row carries its counters.

CREATE TABLE auth_results (
	program TEXT NOT NULL,
	host TEXT NOT NULL,
	pid INTEGER NOT NULL,
	service TEXT NOT NULL,
	mech_class TEXT NOT NULL,
	result TEXT NOT NULL,
	count INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (program, host, pid, service, mech_class, result)
);
