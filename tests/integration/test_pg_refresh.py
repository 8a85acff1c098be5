"""The daemon's cache of a PostgreSQL store (issue 15): the pull streams each
table with COPY TO STDOUT and decodes its text format, so values that COPY
escapes (tab, newline, carriage return, backslash, a text that reads "\\N")
and NULLs must arrive in policy-cache.db as PostgreSQL has them, integers as
integers and text as text, exactly as a SELECT of every row would give."""

import json
import os
import sqlite3

import pytest

from pg_util import PostgresServer, missing, private_server
from policyd_util import CTL, Policyd, wait_for

pytestmark = pytest.mark.skipif(missing() is not None, reason=missing() or "")

ADMIN = "saslgate_admin"
DAEMON = "saslgate_daemon"
COLUMNS = ("id, policy, user_pattern, group_name, location, mechs, reason, created_by, "
           "created_at, expires_at")
AWKWARD = ["tab\there", "new\nline", "cr\rlf\r\n", "back\\slash \\N \\t", "\\N",
           "caf\u00e9 \u65e5\u672c \U0001f600", "\b\f\v bytes below space", " blank ends "]


@pytest.fixture(scope="module")
def pg():
    with private_server(init_ctl=CTL) as server:
        yield server


def pg_rows(pg):
    """Every exception as PostgreSQL has it, by id."""
    out = pg.psql("SELECT coalesce(json_agg(json_build_array(%s) ORDER BY id), '[]') "
                  "FROM exceptions" % COLUMNS).stdout
    return [tuple(r) for r in json.loads(out)]


def cache_rows(path):
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        return db.execute("SELECT %s FROM exceptions ORDER BY id" % COLUMNS).fetchall()
    finally:
        db.close()


def test_escaped_values_arrive_as_they_are(pg, tmp_path):
    values = []
    for i, text in enumerate(AWKWARD):
        lit = "'%s'" % text.replace("'", "''")
        values.append("(NULL, 'u%d@example.test', NULL, NULL, %s, %s, 'test', %d, %s)" % (
            i, "'PLAIN,LOGIN'" if i % 2 else "NULL", lit, -5 if i == 0 else 1700000000 + i,
            "NULL" if i % 3 else str(9007199254740993 + i)))
    pg.psql("INSERT INTO exceptions (policy, user_pattern, group_name, location, mechs, "
            "reason, created_by, created_at, expires_at) VALUES %s; "
            "UPDATE settings SET value = (value::bigint + 1)::text WHERE key = 'generation'"
            % ", ".join(values), user=ADMIN)
    want = pg_rows(pg)
    assert [r[6] for r in want[-len(AWKWARD):]] == AWKWARD

    d = str(tmp_path)
    p = Policyd(tmp_path, d, extra_args=["--store", pg.uri(DAEMON)])
    try:
        assert p.proc.poll() is None, open(p.log_path).read()
        cache = os.path.join(d, "policy-cache.db")
        assert wait_for(lambda: os.path.exists(cache), 10)
        got = cache_rows(cache)
        assert got == want
        assert all(isinstance(r[0], int) and isinstance(r[8], int) for r in got)
        assert all(r[9] is None or isinstance(r[9], int) for r in got)
        assert not [f for f in os.listdir(d) if ".tmp." in f]

        # a change: the cache is replaced whole, the new rows as they are
        pg.psql("DELETE FROM exceptions WHERE created_at = -5; "
                "UPDATE settings SET value = (value::bigint + 1)::text WHERE key = 'generation'; "
                "SELECT pg_notify('saslgate_policy', value) FROM settings "
                "WHERE key = 'generation'", user=ADMIN)
        want = pg_rows(pg)
        assert wait_for(lambda: cache_rows(cache) == want, 10), cache_rows(cache)[-3:]
        assert not [f for f in os.listdir(d) if ".tmp." in f]
    finally:
        p.stop()


def test_delivery_finds_the_primary_of_a_multi_host_store(pg, tmp_path):
    """store names a hot standby first and the primary second: the daemon
    may read its policy from the standby, but its deliverer asks libpq for
    a read-write session and delivers to the primary."""
    pg.psql("CHECKPOINT")  # pg_basebackup's own checkpoint has nothing left to spread
    standby = PostgresServer(primary=pg)
    try:
        standby.start()
        assert standby.psql("SELECT pg_is_in_recovery()").stdout.strip() == "t"
        uri = "postgresql://%s@127.0.0.1:%d,127.0.0.1:%d/saslgate" % (DAEMON, standby.port,
                                                                      pg.port)
        d = tmp_path / "mx-multi"
        d.mkdir()
        p = Policyd(d, str(d), extra_args=["--store", uri],
                    settings={"heartbeat_interval": "1s", "host_name": "mx-multi"})
        try:
            assert wait_for(lambda: pg.psql("SELECT count(*) FROM fleet_heartbeats WHERE "
                                            "host = 'mx-multi'").stdout.strip() != "0", 10), \
                p.log_text()
            assert "cannot deliver" not in p.log_text()
        finally:
            assert p.stop() == 0
    finally:
        standby.remove()
