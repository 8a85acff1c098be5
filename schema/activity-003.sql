-- activity.db, schema version 3: the decision log is stored a batch per row.
-- A row per decision (and its index entry) cost the daemons' activity writer
-- about 2 us a decision, more than everything else it does; a batch row
-- holds the decisions of one write as a JSON array, and saslgatectl decodes
-- it in C. The decisions view keeps the old table's columns for ad-hoc SQL
-- (slower: it extracts every field through JSON), and inserting into it
-- stores a batch of one.
--
-- A batch's decisions have the ids id, id + 1, ..., id + n - 1, in the order
-- of data: [at, queue_id, instance, user, client, mech, mech_class, tls,
-- service, sender, outcome, policy, report_only, generation] each, with
-- null for an empty text.

CREATE TABLE decision_batches (
	id INTEGER PRIMARY KEY,
	daemon TEXT NOT NULL,
	first_at INTEGER NOT NULL,
	last_at INTEGER NOT NULL,
	n INTEGER NOT NULL,
	data TEXT NOT NULL
);

CREATE INDEX decision_batches_last_at ON decision_batches(last_at);

INSERT INTO decision_batches (id, daemon, first_at, last_at, n, data)
SELECT id, daemon, at, at, 1,
       json_array(json_array(at, queue_id, instance, user, client, mech, mech_class, tls,
                             service, sender, outcome, policy, report_only, generation))
FROM decisions;

DROP TABLE decisions;

CREATE VIEW decisions (id, at, daemon, queue_id, instance, user, client, mech, mech_class, tls,
                       service, sender, outcome, policy, report_only, generation) AS
SELECT b.id + j.key, json_extract(j.value, '$[0]'), b.daemon,
       json_extract(j.value, '$[1]'), json_extract(j.value, '$[2]'),
       json_extract(j.value, '$[3]'), json_extract(j.value, '$[4]'),
       json_extract(j.value, '$[5]'), json_extract(j.value, '$[6]'),
       json_extract(j.value, '$[7]'), json_extract(j.value, '$[8]'),
       json_extract(j.value, '$[9]'), json_extract(j.value, '$[10]'),
       json_extract(j.value, '$[11]'), json_extract(j.value, '$[12]'),
       json_extract(j.value, '$[13]')
FROM decision_batches AS b, json_each(b.data) AS j;

CREATE TRIGGER decisions_insert INSTEAD OF INSERT ON decisions
BEGIN
	INSERT INTO decision_batches (id, daemon, first_at, last_at, n, data)
	VALUES (coalesce((SELECT id + n FROM decision_batches ORDER BY id DESC LIMIT 1), 1),
	        NEW.daemon, NEW.at, NEW.at, 1,
	        json_array(json_array(NEW.at, NEW.queue_id, NEW.instance, NEW.user, NEW.client,
	                              NEW.mech, NEW.mech_class, coalesce(NEW.tls, 0), NEW.service,
	                              NEW.sender, NEW.outcome, NEW.policy, NEW.report_only,
	                              NEW.generation)));
END;
