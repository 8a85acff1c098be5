-- Roles and privileges of a saslgate fleet on PostgreSQL. Run once, as a
-- superuser (or the database owner), in the saslgate database, before
-- "saslgatectl --store URI init"; it can be run again (idempotent):
--
--   psql -d saslgate -f schema/pg/roles.sql
--
-- saslgate_admin: saslgatectl. Owns the tables (init creates them) and is the
--   only role that writes the policy.
-- saslgate_daemon: saslgate-policyd and saslgate-milter. Reads the policy
--   tables and LISTENs for changes (LISTEN needs no privilege); never
--   changes the policy, as a daemon opens policy.db read-only. It may
--   append and update the fleet's activity (the fleet_* tables of
--   schema/pg/policy-002.sql), and only those, never delete.
--
-- Both are LOGIN roles without a password: give them one (ALTER ROLE ...
-- PASSWORD) or map them in pg_hba.conf, or grant them to your own login
-- roles (GRANT saslgate_daemon TO mx1).

DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'saslgate_admin') THEN
		CREATE ROLE saslgate_admin LOGIN;
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'saslgate_daemon') THEN
		CREATE ROLE saslgate_daemon LOGIN;
	END IF;
END
$$;

GRANT USAGE, CREATE ON SCHEMA public TO saslgate_admin;
GRANT USAGE ON SCHEMA public TO saslgate_daemon;
REVOKE CREATE ON SCHEMA public FROM saslgate_daemon;

-- Tables saslgatectl init creates later: readable by the daemons.
ALTER DEFAULT PRIVILEGES FOR ROLE saslgate_admin IN SCHEMA public
	GRANT SELECT ON TABLES TO saslgate_daemon;

-- Tables that exist already (roles.sql run after init).
DO $$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['schema_version', 'settings', 'mechanisms', 'groups',
	                         'group_members', 'locations', 'location_nets', 'policies',
	                         'exceptions'] LOOP
		IF to_regclass('public.' || t) IS NOT NULL THEN
			EXECUTE format('GRANT SELECT ON public.%I TO saslgate_daemon', t);
			EXECUTE format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON public.%I '
			               'FROM saslgate_daemon', t);
		END IF;
	END LOOP;
	IF to_regclass('public.audit') IS NOT NULL THEN
		REVOKE ALL ON public.audit FROM saslgate_daemon;
	END IF;
END
$$;

-- The fleet's activity (schema version 2), if roles.sql runs after init.
DO $$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['fleet_delivery', 'fleet_decision_batches', 'fleet_usage',
	                         'fleet_heartbeats', 'fleet_auth_results'] LOOP
		IF to_regclass('public.' || t) IS NOT NULL THEN
			EXECUTE format('GRANT SELECT, INSERT, UPDATE ON public.%I TO saslgate_daemon', t);
			EXECUTE format('REVOKE DELETE, TRUNCATE ON public.%I FROM saslgate_daemon', t);
		END IF;
	END LOOP;
END
$$;
