"""The operations side of the PostgreSQL store (issue 15): where each
daemon's snapshot comes from and how old it is (heartbeats, saslgatectl
status, --nagios), the cache refresh off the request path (a refresh of a
large policy never holds a request), and a large batched push (saslgatectl
--store URI import of 100,000 exceptions). The suite runs its own PostgreSQL
(tests/integration/pg_util.py).
"""

import json
import os
import sqlite3
import subprocess
import threading
import time

import pytest

from milter_util import MILTER, Milter
from milter_wire import SMFIR_ACCEPT, SMFIR_CONTINUE, SMFIR_REPLYCODE, session
from pg_util import PG_BIN, missing, private_server
from policyd_util import BLOCK_REPLY, CTL, DUNNO, Policyd, activity_rows, wait_for

pytestmark = pytest.mark.skipif(missing() is not None, reason=missing() or "")

ADMIN = "saslgate_admin"
DAEMON = "saslgate_daemon"
OFFICE_IP = "192.0.2.10"  # the milter_wire default client address
MILTER_PLAIN = {"i": "Q1", "{auth_type}": "PLAIN", "{auth_authen}": "alice@example.test"}
BULK = 100000


@pytest.fixture(scope="module")
def pg():
    with private_server() as server:
        yield server


def ctl(pg, *args, user=ADMIN, store_dir="/nonexistent", timeout=120):
    """saslgatectl -d DIR --store URI ARGS -> CompletedProcess."""
    return subprocess.run([CTL, "-d", str(store_dir), "--store", pg.uri(user)] + list(args),
                          capture_output=True, text=True, timeout=timeout)


def ctl_ok(pg, *args, **kw):
    proc = ctl(pg, *args, **kw)
    assert proc.returncode == 0, "saslgatectl %s -> %d\n%s%s" % (
        " ".join(args), proc.returncode, proc.stdout, proc.stderr)
    return proc.stdout


@pytest.fixture(scope="module")
def store(pg):
    ctl_ok(pg, "init")
    ctl_ok(pg, "location", "add", "office", OFFICE_IP + "/32")
    return pg


def generation(pg):
    return int(pg.psql("SELECT value FROM settings WHERE key = 'generation'").stdout)


def sql_change(pg, sql):
    """A policy change made with SQL, as saslgatectl's push makes it: the rows,
    the generation and the notification in one transaction."""
    pg.psql("BEGIN; %s; UPDATE settings SET value = (value::bigint + 1)::text "
            "WHERE key = 'generation'; SELECT pg_notify('saslgate_policy', "
            "(SELECT value FROM settings WHERE key = 'generation')); COMMIT;" % sql)
    return generation(pg)


def office_exception_sql(reason):
    return ("INSERT INTO exceptions (location, reason, created_by, created_at) "
            "VALUES ('office', '%s', 'test', 0)" % reason)


def bulk_exceptions_sql(n, prefix):
    """n exceptions for users no request of these tests comes from."""
    return ("INSERT INTO exceptions (user_pattern, reason, created_by, created_at) "
            "SELECT '%s' || g || '@bulk.test', 'bulk', 'test', 0 "
            "FROM generate_series(1, %d) AS g" % (prefix, n))


def policyd_on(pg, d):
    return Policyd(d, str(d), extra_args=["--store", pg.uri(DAEMON)],
                   settings={"heartbeat_interval": "1s"})


def ask(p):
    with p.client() as c:
        return c.ask(client_address=OFFICE_IP)


def milter_decides(m):
    cmd, _ = session(m.address, MILTER_PLAIN, addr=OFFICE_IP)
    if cmd == SMFIR_REPLYCODE:
        return "block"
    assert cmd in (SMFIR_ACCEPT, SMFIR_CONTINUE)
    return "allow"


def heartbeat(store_dir, pid):
    try:
        rows = activity_rows(store_dir, "SELECT generation, snapshot_source, snapshot_at, "
                             "degraded FROM heartbeats WHERE pid = ?", (pid,))
    except sqlite3.OperationalError:  # the writer has not created activity.db yet
        return None
    return rows[0] if rows else None


def daemon_in(status, pid):
    beats = [h for h in status["daemons"] if h["pid"] == pid]
    assert len(beats) == 1, status
    return beats[0]


def waiting_for_lock(pg, application):
    """Backends of the program waiting for a lock (its pull blocked)."""
    return int(pg.psql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                       "AND application_name = '%s'" % application).stdout)


class TableLock:
    """An ACCESS EXCLUSIVE lock on a policy table, held by a psql session until
    release(): a daemon's pull of the policy waits for it (it reads every
    table), which holds a refresh open for as long as the test needs."""

    def __init__(self, pg, table):
        self.proc = subprocess.Popen(
            [os.path.join(PG_BIN, "psql"), "-X", "-q", "-h", "127.0.0.1", "-p", str(pg.port),
             "-U", "postgres", "-d", "saslgate"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.proc.stdin.write("BEGIN;\nLOCK TABLE %s IN ACCESS EXCLUSIVE MODE;\n"
                              "\\echo locked\n" % table)
        self.proc.stdin.flush()
        while True:
            line = self.proc.stdout.readline()
            assert line, "psql: " + self.proc.stderr.read()
            if "locked" in line:
                break

    def release(self):
        if self.proc.poll() is None:
            self.proc.stdin.write("COMMIT;\n")
            self.proc.stdin.close()
            self.proc.wait(10)


def test_status_shows_the_snapshot_source_and_age(store, tmp_path):
    pg = store
    d = tmp_path / "mx"
    d.mkdir()
    p = policyd_on(pg, d)
    try:
        assert ask(p) == BLOCK_REPLY
        beat = wait_for(lambda: heartbeat(str(d), p.pid), timeout=5)
        assert beat[1] == "postgresql" and beat[2] > 0 and beat[3] == 0
        # status on the PostgreSQL store, as a monitoring check runs it: the
        # daemons' role, which cannot read the audit trail, will do
        status = json.loads(ctl_ok(pg, "--json", "status", user=DAEMON, store_dir=d))
        assert status["state"] == "OK", status["problems"]
        assert status["store"]["postgresql"].startswith("PostgreSQL database saslgate on")
        assert status["store"]["generation"] == generation(pg)
        mine = daemon_in(status, p.pid)
        assert mine["snapshot_source"] == "postgresql"
        assert mine["snapshot_at"] is not None and mine["snapshot_age"] >= 0
        text = ctl_ok(pg, "status", user=DAEMON, store_dir=d)
        assert "store PostgreSQL database saslgate on 127.0.0.1" in text
        assert "policy snapshot  from postgresql, read " in text
        assert "policy.db" not in text and "saslgatectl." not in text  # no temporary copy
        nagios = ctl(pg, "status", "--nagios", user=DAEMON, store_dir=d)
        assert nagios.returncode == 0 and nagios.stdout.startswith("SASLGATE OK - "), nagios
        assert "daemons_on_cache=0;" in nagios.stdout
        # without --store (a per-host check without the database's
        # credentials): not "policy.db is missing" (CRITICAL): the daemons'
        # policy-cache.db stands for it, and their heartbeats are here
        plain = subprocess.run([CTL, "-d", str(d), "status", "--nagios"], capture_output=True,
                               text=True, timeout=30)
        assert plain.returncode == 0 and plain.stdout.startswith("SASLGATE OK - "), plain
        assert "missing" not in plain.stdout and "daemons_on_cache=0;" in plain.stdout

        # PostgreSQL away: the daemon serves its cache, and says so
        pg.stop()
        try:
            p.wait_log("unavailable, enforcing the cached policy generation")
            wait_for(lambda: heartbeat(str(d), p.pid)[1] == "cache", timeout=5)
            assert ask(p) == BLOCK_REPLY
            nagios = ctl(pg, "status", "--nagios", user=DAEMON, store_dir=d)
            assert nagios.returncode == 1, nagios  # WARNING, not CRITICAL
            line = nagios.stdout
            assert line.startswith("SASLGATE WARNING - policyd pid %d on " % p.pid), line
            assert "serves its cached policy, PostgreSQL unreachable (policy read " in line
            assert "daemons_on_cache=1;" in line
            assert "showing this host's cached copy" in nagios.stderr
            status = json.loads(ctl(pg, "--json", "status", user=DAEMON, store_dir=d).stdout)
            mine = daemon_in(status, p.pid)
            assert mine["snapshot_source"] == "cache" and mine["degraded"] is True
            assert "(unreachable: this host's cached copy)" in status["store"]["postgresql"]
            # no cache on this host either: UNKNOWN
            empty = tmp_path / "empty"
            empty.mkdir()
            nagios = ctl(pg, "status", "--nagios", user=DAEMON, store_dir=empty)
            assert nagios.returncode == 3 and nagios.stdout.startswith("SASLGATE UNKNOWN - ")
        finally:
            pg.start()
        p.wait_log("available again after", timeout=15)
        wait_for(lambda: heartbeat(str(d), p.pid)[1] == "postgresql", timeout=5)
        assert ctl(pg, "status", "--nagios", user=DAEMON, store_dir=d).returncode == 0
    finally:
        assert p.stop() == 0


def test_status_of_a_daemon_on_policy_db(tmp_path):
    d = tmp_path / "single"
    d.mkdir()
    subprocess.run([CTL, "-d", str(d), "init"], check=True, capture_output=True, timeout=30)
    p = Policyd(d, str(d), settings={"heartbeat_interval": "1s"})
    try:
        before = int(time.time())
        wait_for(lambda: heartbeat(str(d), p.pid), timeout=5)
        status = json.loads(subprocess.run([CTL, "-d", str(d), "--json", "status"],
                                           capture_output=True, text=True, timeout=30).stdout)
        mine = daemon_in(status, p.pid)
        assert mine["snapshot_source"] == "policy.db" and mine["snapshot_age"] >= 0
        assert status["store"]["postgresql"] is None
        assert heartbeat(str(d), p.pid)[2] >= before - 1
    finally:
        assert p.stop() == 0


def test_a_refresh_never_holds_a_request(store, tmp_path):
    """While a daemon refreshes its cache (held open by a lock on one of the
    tables it pulls), every request is answered at once, by the old policy;
    the first request after the refresh finished is answered by the new one.
    Shown with a large policy, without timing assertions: the refresh is
    still waiting when the requests have been answered."""
    pg = store
    sql_change(pg, bulk_exceptions_sql(BULK, "refresh"))
    d = tmp_path / "mx"
    d.mkdir()
    p = policyd_on(pg, d)
    md = str(tmp_path / "milter")
    os.mkdir(md)
    m = Milter(md, extra_args=["--store", pg.uri(DAEMON)]) if os.path.exists(MILTER) else None
    lock = None
    try:
        assert ask(p) == BLOCK_REPLY
        if m:
            assert milter_decides(m) == "block"
        refreshes = p.log_text().count("policy cache refreshed from")

        lock = TableLock(pg, "location_nets")
        new = sql_change(pg, office_exception_sql("during a refresh"))
        # both daemons' refresh has begun: their pull waits for the lock
        wait_for(lambda: waiting_for_lock(pg, "saslgate-policyd") == 1, timeout=10)
        if m:
            wait_for(lambda: waiting_for_lock(pg, "saslgate-milter") == 1, timeout=10)
        answers = []
        with p.client() as c:
            for _ in range(200):
                answers.append(c.ask(client_address=OFFICE_IP))
        for _ in range(20):  # new connections too
            answers.append(ask(p))
        milter_answers = [milter_decides(m) for _ in range(20)] if m else []
        # every request answered, by the policy in service before the change ...
        assert answers == [BLOCK_REPLY] * 220
        assert milter_answers == ["block"] * len(milter_answers)
        # ... while the refresh had not finished
        assert waiting_for_lock(pg, "saslgate-policyd") == 1
        assert p.log_text().count("policy cache refreshed from") == refreshes
        if m:
            assert waiting_for_lock(pg, "saslgate-milter") == 1

        lock.release()
        p.wait_log("policy cache refreshed from PostgreSQL database saslgate on 127.0.0.1:%d "
                   "as saslgate_daemon: generation %d in service" % (pg.port, new), timeout=30)
        # the next request after the refresh: the new policy
        assert ask(p) == DUNNO
        if m:
            wait_for(lambda: "generation %d in service" % new in m.output(), timeout=30)
            assert milter_decides(m) == "allow"
        line = [ln for ln in p.log_text().splitlines()
                if "generation %d in service" % new in ln][0]
        print("\n" + line)

        # a refresh of the large policy with requests streaming: every one
        # answered (the latencies are printed, not asserted)
        stop = threading.Event()
        latencies, replies = [], []

        def stream():
            with p.client() as c:
                while not stop.is_set():
                    t = time.monotonic()
                    replies.append(c.ask(client_address=OFFICE_IP))
                    latencies.append(time.monotonic() - t)

        t = threading.Thread(target=stream)
        t.start()
        try:
            removed = sql_change(pg, "DELETE FROM exceptions WHERE location = 'office'")
            p.wait_log("generation %d in service" % removed, timeout=30)
            time.sleep(0.05)
        finally:
            stop.set()
            t.join(30)
        assert replies and set(replies) <= {BLOCK_REPLY, DUNNO}
        assert replies[-1] == BLOCK_REPLY
        assert ask(p) == BLOCK_REPLY
        latencies.sort()
        print("%d requests during a refresh of %d exceptions: median %.2f ms, max %.2f ms" % (
            len(latencies), BULK, 1000 * latencies[len(latencies) // 2],
            1000 * latencies[-1]))

        # a daemon stops even while its refresh waits: the pull is cancelled
        lock = TableLock(pg, "location_nets")
        sql_change(pg, office_exception_sql("at the stop"))
        wait_for(lambda: waiting_for_lock(pg, "saslgate-policyd") == 1, timeout=10)
        assert p.stop() == 0
        if m:
            wait_for(lambda: waiting_for_lock(pg, "saslgate-milter") == 1, timeout=10)
            assert m.stop() == 0
            assert "unavailable" not in m.output()
        assert waiting_for_lock(pg, "saslgate-policyd") == 0
        assert "unavailable" not in p.log_text()  # a stop, not an outage
    finally:
        if lock:
            lock.release()
        assert p.stop() == 0
        if m:
            m.stop()
        sql_change(pg, "DELETE FROM exceptions WHERE user_pattern LIKE 'refresh%'")


def test_import_of_100000_exceptions(store, tmp_path):
    """saslgatectl --store URI import of a large policy: every row arrives
    (the push is batched); a second import replaces them all (as many
    deletes); a daemon serves the result."""
    pg = store
    doc = json.loads(ctl_ok(pg, "export"))
    doc["exceptions"] = [{"policy": None, "user": "import%06d@bulk.test" % i, "group": None,
                          "location": None, "mechs": None, "reason": "import %d" % i,
                          "created_by": "test", "created_at": "2026-01-01T00:00:00Z",
                          "expires_at": None} for i in range(BULK)]
    doc["exceptions"].append({"policy": None, "user": None, "group": None,
                              "location": "office", "mechs": "PLAIN", "reason": "the office",
                              "created_by": "test", "created_at": "2026-01-01T00:00:00Z",
                              "expires_at": None})
    path = tmp_path / "large.json"
    path.write_text(json.dumps(doc))
    g = generation(pg)
    started = time.monotonic()
    out = ctl_ok(pg, "import", str(path), timeout=300)
    print("\nimport of %d exceptions: %.1f s" % (BULK + 1, time.monotonic() - started))
    assert "%d exceptions" % (BULK + 1) in out
    assert generation(pg) == g + 1
    rows = pg.psql("SELECT count(*), count(DISTINCT id), min(reason), max(user_pattern) "
                   "FROM exceptions WHERE user_pattern LIKE 'import%'").stdout.strip()
    assert rows == "%d|%d|import 0|import%06d@bulk.test" % (BULK, BULK, BULK - 1)
    assert pg.psql("SELECT mechs FROM exceptions WHERE location = 'office'").stdout.strip() \
        == "PLAIN"
    # the identity sequence follows: a new exception gets a new id
    top = int(pg.psql("SELECT max(id) FROM exceptions").stdout)
    added = json.loads(ctl_ok(pg, "--json", "exception", "add", "--user", "late@bulk.test",
                              "--permanent", "--reason", "after the import"))
    assert added["id"] > top
    # PostgreSQL and a fresh export agree
    export = json.loads(ctl_ok(pg, "export"))
    assert len(export["exceptions"]) == BULK + 2
    d = tmp_path / "mx"
    d.mkdir()
    p = policyd_on(pg, d)
    try:
        assert ask(p) == DUNNO  # the office exception
        with p.client() as c:
            assert c.ask(client_address="198.51.100.1",
                         sasl_username="import054321@bulk.test") == DUNNO
            assert c.ask(client_address="198.51.100.1",
                         sasl_username="nobody@bulk.test") == BLOCK_REPLY
        # the same import once more: every row deleted and written again
        g = generation(pg)
        ctl_ok(pg, "import", str(path), timeout=300)
        assert generation(pg) == g + 1
        assert pg.psql("SELECT count(*) FROM exceptions").stdout.strip() == str(BULK + 1)
        assert pg.psql("SELECT count(*) FROM exceptions WHERE id <= %d" % top).stdout.strip() \
            == "0"
        # back to a small policy: the deletes are batched too
        doc["exceptions"] = doc["exceptions"][-1:]
        path.write_text(json.dumps(doc))
        ctl_ok(pg, "import", str(path), timeout=300)
        assert pg.psql("SELECT count(*) FROM exceptions").stdout.strip() == "1"
        wait_for(lambda: heartbeat(str(d), p.pid) and
                 heartbeat(str(d), p.pid)[0] == generation(pg), timeout=30)
        with p.client() as c:
            assert c.ask(client_address="198.51.100.1",
                         sasl_username="import054321@bulk.test") == BLOCK_REPLY
    finally:
        assert p.stop() == 0


def test_a_failed_push_changes_nothing(store, tmp_path):
    """A row PostgreSQL refuses in the middle of a large push (batched, in
    pipeline mode): the whole change is rolled back, and the error named."""
    pg = store
    g = generation(pg)
    before = pg.psql("SELECT count(*) FROM exceptions").stdout.strip()
    doc = json.loads(ctl_ok(pg, "export"))
    doc["exceptions"] += [{"policy": None, "user": "fail%05d@bulk.test" % i, "group": None,
                           "location": None, "mechs": None, "reason": "r",
                           "created_by": "test", "created_at": "2026-01-01T00:00:00Z",
                           "expires_at": None} for i in range(5000)]
    path = tmp_path / "failing.json"
    path.write_text(json.dumps(doc))
    # PostgreSQL refuses one row that SQLite accepts
    pg.psql("ALTER TABLE exceptions ADD CONSTRAINT test_no_2500 "
            "CHECK (user_pattern IS DISTINCT FROM 'fail02500@bulk.test')")
    try:
        proc = ctl(pg, "import", str(path), timeout=300)
        assert proc.returncode == 1, proc
        assert "test_no_2500" in proc.stderr and "nothing was changed" in proc.stderr
        assert proc.stdout == ""
        assert generation(pg) == g
        assert pg.psql("SELECT count(*) FROM exceptions").stdout.strip() == before
    finally:
        pg.psql("ALTER TABLE exceptions DROP CONSTRAINT test_no_2500")
