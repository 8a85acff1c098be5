-- activity.db, schema version 2: the decision log loses its (user, at) index,
-- whose random inserts cost the writer two thirds of its time per decision
-- (saslgatectl log --user now filters the time range instead), and the usage
-- table keeps what report legacy needs of the newest submission it counts.

DROP INDEX IF EXISTS decisions_user;

ALTER TABLE usage ADD COLUMN last_client TEXT;
ALTER TABLE usage ADD COLUMN last_tls INTEGER;
ALTER TABLE usage ADD COLUMN last_service TEXT;
