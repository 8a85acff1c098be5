-- policy.db, schema version 1: the catalogue, groups, locations, policies,
-- exceptions, settings and the admin audit trail. Written only by saslgatectl.
-- Lists inside a policy are comma-separated text (see saslgate(5)); names they
-- reference are validated by saslgatectl before commit.

CREATE TABLE settings (
	key TEXT PRIMARY KEY,
	value TEXT NOT NULL
);

CREATE TABLE mechanisms (
	name TEXT PRIMARY KEY COLLATE NOCASE,
	class TEXT NOT NULL CHECK (class IN ('legacy', 'password', 'modern'))
);

CREATE TABLE groups (
	name TEXT PRIMARY KEY,
	created_at INTEGER NOT NULL
);

CREATE TABLE group_members (
	group_name TEXT NOT NULL REFERENCES groups(name) ON DELETE CASCADE,
	pattern TEXT NOT NULL,
	PRIMARY KEY (group_name, pattern)
);

CREATE TABLE locations (
	name TEXT PRIMARY KEY,
	created_at INTEGER NOT NULL
);

CREATE TABLE location_nets (
	location_name TEXT NOT NULL REFERENCES locations(name) ON DELETE CASCADE,
	cidr TEXT NOT NULL,
	PRIMARY KEY (location_name, cidr)
);

CREATE TABLE policies (
	name TEXT PRIMARY KEY,
	state TEXT NOT NULL CHECK (state IN ('off', 'report-only', 'enforce')),
	enforce_from INTEGER,
	mechs TEXT NOT NULL DEFAULT 'legacy',
	include_users TEXT NOT NULL DEFAULT 'all',
	include_groups TEXT NOT NULL DEFAULT '',
	exclude_users TEXT NOT NULL DEFAULT '',
	exclude_groups TEXT NOT NULL DEFAULT '',
	include_locations TEXT NOT NULL DEFAULT 'any',
	exclude_locations TEXT NOT NULL DEFAULT '',
	tls TEXT NOT NULL DEFAULT 'any' CHECK (tls IN ('any', 'plaintext', 'encrypted')),
	services TEXT NOT NULL DEFAULT 'any',
	reply_code TEXT NOT NULL DEFAULT '550',
	reply_enh TEXT NOT NULL DEFAULT '5.7.9',
	reply_text TEXT NOT NULL DEFAULT 'Authentication mechanism %m is not allowed; use OAuth2 (XOAUTH2/OAUTHBEARER)',
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
);

CREATE TABLE exceptions (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	policy TEXT REFERENCES policies(name) ON DELETE CASCADE,
	user_pattern TEXT,
	group_name TEXT REFERENCES groups(name),
	location TEXT REFERENCES locations(name),
	mechs TEXT,
	reason TEXT NOT NULL CHECK (reason <> ''),
	created_by TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER,
	CHECK (user_pattern IS NOT NULL OR group_name IS NOT NULL OR location IS NOT NULL),
	CHECK (user_pattern IS NULL OR group_name IS NULL)
);

CREATE INDEX exceptions_expires ON exceptions(expires_at);

CREATE TABLE audit (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	at INTEGER NOT NULL,
	actor TEXT NOT NULL,
	action TEXT NOT NULL,
	object TEXT NOT NULL,
	before TEXT,
	after TEXT
);

CREATE INDEX audit_at ON audit(at);

INSERT INTO settings (key, value) VALUES
	('generation', '0'),
	('unknown_mechanism_class', 'legacy'),
	('activity_retention_days', '90');
