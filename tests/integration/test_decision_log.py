"""The decision log as stored since activity.db schema 3: a batch of decisions
per row of decision_batches (JSON), decoded in C by saslgatectl, with the
decisions view for SQL. Covers the daemon's batches and its JSON escaping,
texts of every kind written through the view, the migration of a schema-2
file, exact newest-first order across overlapping batches, a damaged batch,
and prune's batch granularity."""

import json
import os
import signal
import sqlite3
import time

import pytest

from policyd_util import POLICYD, ROOT
from visibility_util import FAST, Policyd, activity, ask, js, ok, run, wait_heartbeat, wait_logged

pytestmark = pytest.mark.skipif(not os.access(POLICYD, os.X_OK), reason="not built")

SCHEMA = os.path.join(os.environ.get("SASLGATE_SRCDIR", ROOT), "schema")
NOW = int(time.time())


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "store"
    ok(path, "init")
    return path


# The schema version this build writes: the number of activity migrations.
NEWEST = len([f for f in os.listdir(SCHEMA) if f.startswith("activity-") and f.endswith(".sql")])


def make_activity(store, version):
    """activity.db at a schema version, from the migrations in schema/ (as
    an older saslgate would have left it)."""
    db = sqlite3.connect(os.path.join(str(store), "activity.db"))
    for v in range(1, version + 1):
        with open(os.path.join(SCHEMA, "activity-%03d.sql" % v)) as f:
            db.executescript(f.read())
    db.execute("PRAGMA user_version = %d" % version)
    db.commit()
    return db


def add_batch(db, first_id, daemon, decisions):
    """A batch row as a daemon writes it; decisions: (at, user, outcome)."""
    data = [[at, None, None, user, "192.0.2.1", "PLAIN", "legacy", 0, "submission", None,
             outcome, None, None, 1] for at, user, outcome in decisions]
    db.execute("INSERT INTO decision_batches (id, daemon, first_at, last_at, n, data) "
               "VALUES (?, ?, ?, ?, ?, ?)",
               (first_id, daemon, min(d[0] for d in decisions),
                max(d[0] for d in decisions), len(decisions), json.dumps(data)))


def test_daemon_stores_a_burst_in_few_batches(tmp_path, store):
    d = Policyd(tmp_path, store, settings={"heartbeat_interval": "1s",
                                           "activity_flush_ms": "1000"})
    try:
        wait_heartbeat(store, d.pid)
        n = 60
        with d.client() as c:
            for i in range(n):
                reply = c.ask(sasl_method="PLAIN", sasl_username="u%02d@example.com" % i,
                              client_address="192.0.2.%d" % (i + 1))
                assert reply.startswith(b"action=550"), reply
        wait_logged(store, n)
    finally:
        d.stop()
    rows = activity(store, "SELECT id, n, daemon FROM decision_batches ORDER BY id")
    assert sum(r[1] for r in rows) == n
    assert len(rows) < n / 4, "a batch per decision: %r" % rows
    assert all(r[2] == "policyd" for r in rows)
    for (id1, n1, _), (id2, _, _) in zip(rows, rows[1:]):
        assert id2 == id1 + n1, "ids of consecutive batches do not follow on"
    ids = [r[0] for r in activity(store, "SELECT id FROM decisions ORDER BY id")]
    assert ids == list(range(rows[0][0], rows[0][0] + n))
    logged = js(store, "log", "--limit", "0")
    assert [e["user"] for e in logged] == ["u%02d@example.com" % i for i in reversed(range(n))]
    assert [e["id"] for e in logged] == list(reversed(ids))


def test_backslash_in_a_user_name_survives(tmp_path, store):
    """pack_field() keeps a backslash (DOMAIN\\user logins); the writer must
    escape it in the batch's JSON."""
    d = Policyd(tmp_path, store, settings=FAST)
    try:
        reply = ask(d, "CORP\\alice", "PLAIN", "192.0.2.7")
        assert reply.startswith(b"action=550"), reply
        wait_logged(store, 1)
    finally:
        d.stop()
    assert activity(store, "SELECT user FROM decisions") == [("CORP\\alice",)]
    (entry,) = js(store, "log", "--user", "CORP\\alice")
    assert entry["user"] == "CORP\\alice"
    out = js(store, "log", "explain", entry["id"])
    assert out["then"]["user"] == "CORP\\alice"


def test_any_text_written_through_the_view_reads_back(store):
    """Rows inserted through the decisions view are JSON made by SQLite,
    with every kind of escape; saslgatectl's decoder must give them back."""
    db = make_activity(store, NEWEST)
    texts = ['quote " here', "back\\slash", "tab\tnew\nline", "ctrl \x01\x1f",
             "caf\u00e9 \u2603 \U0001F600", "slash / and ,]["]
    with db:
        for i, t in enumerate(texts):
            db.execute("INSERT INTO decisions (at, daemon, user, sender, policy, outcome, "
                       "report_only, tls, generation) VALUES (?, 'milter', ?, ?, 'p1', "
                       "'block', 'a,b', 1, 7)", (NOW - 100 + i, t, t))
        rows = db.execute("SELECT id, n FROM decision_batches ORDER BY id").fetchall()
    db.close()
    assert rows == [(i + 1, 1) for i in range(len(texts))]
    logged = js(store, "log")
    assert [e["user"] for e in logged] == list(reversed(texts))
    assert [e["sender"] for e in logged] == list(reversed(texts))
    for e in logged:
        assert e["daemon"] == "milter" and e["tls"] is True and e["generation"] == 7
        assert e["report_only"] == ["a", "b"] and e["policy"] == "p1"
        assert e["mech"] is None and e["queue_id"] is None
    out = js(store, "log", "explain", 5)
    assert out["then"]["user"] == texts[4]


def test_schema_2_is_migrated_with_its_ids(store):
    db = make_activity(store, 2)
    with db:
        db.execute("INSERT INTO decisions (id, at, daemon, user, client, mech, mech_class, "
                   "tls, outcome, policy) VALUES (41, ?, 'policyd', 'old@example.com', "
                   "'192.0.2.9', 'LOGIN', 'legacy', 1, 'block', 'block-legacy')",
                   (NOW - 3600,))
        db.execute("INSERT INTO decisions (id, at, daemon, user, outcome) VALUES "
                   "(42, ?, 'milter', 'new@example.com', 'not-authenticated')", (NOW - 60,))
    db.close()
    # read-only commands do not migrate; a writer (here prune) does
    proc = run(store, "log")
    assert proc.returncode != 0 and "schema version 2" in proc.stderr
    assert js(store, "prune", "--older-than", "1000d")["decisions"] == 0
    assert activity(store, "PRAGMA user_version") == [(NEWEST,)]
    logged = js(store, "log")
    assert [(e["id"], e["user"], e["daemon"]) for e in logged] == [
        (42, "new@example.com", "milter"), (41, "old@example.com", "policyd")]
    assert logged[1]["tls"] is True and logged[1]["mech"] == "LOGIN"
    # the next decision carries on after the old ids
    with sqlite3.connect(os.path.join(str(store), "activity.db")) as db:
        db.execute("INSERT INTO decisions (at, daemon, outcome) VALUES (?, 'policyd', "
                   "'allow')", (NOW,))
    assert js(store, "log", "--limit", "1")[0]["id"] == 43


def test_log_limit_is_exact_across_overlapping_batches(store):
    """Two daemons write batches whose times interleave; --limit must give
    exactly the newest decisions, by time and then id."""
    db = make_activity(store, NEWEST)
    t = NOW - 1000
    with db:
        add_batch(db, 1, "policyd", [(t + 1, "a1", "block"), (t + 5, "a2", "block"),
                                     (t + 9, "a3", "block")])
        add_batch(db, 4, "milter", [(t + 2, "b1", "allow"), (t + 6, "b2", "allow"),
                                    (t + 8, "b3", "allow")])
        add_batch(db, 7, "policyd", [(t + 3, "c1", "block"), (t + 4, "c2", "block")])
    db.close()
    everything = [e["user"] for e in js(store, "log")]
    assert everything == ["a3", "b3", "b2", "a2", "c2", "c1", "b1", "a1"]
    for limit in range(1, 9):
        got = [e["user"] for e in js(store, "log", "--limit", limit)]
        assert got == everything[:limit], limit
    assert [e["user"] for e in js(store, "log", "--outcome", "allow", "--limit", 2)] == [
        "b3", "b2"]
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t + 4))
    until = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t + 6))
    assert [e["user"] for e in js(store, "log", "--since", since, "--until", until)] == [
        "b2", "a2", "c2"]
    stats = js(store, "stats", "--since", since, "--until", until)
    assert stats["total"] == 3


def test_damaged_batch_is_skipped_with_a_warning(store):
    db = make_activity(store, NEWEST)
    with db:
        add_batch(db, 1, "policyd", [(NOW - 30, "before", "block")])
        db.execute("INSERT INTO decision_batches (id, daemon, first_at, last_at, n, data) "
                   "VALUES (2, 'policyd', ?, ?, 1, '[[1, \"unterminated')", (NOW - 20, NOW - 20))
        add_batch(db, 3, "policyd", [(NOW - 10, "after", "block")])
    db.close()
    proc = run(store, "--json", "log")
    assert proc.returncode == 0, proc.stderr
    assert [e["user"] for e in json.loads(proc.stdout)] == ["after", "before"]
    assert "decision batch 2 is damaged" in proc.stderr
    proc = run(store, "log", "explain", "2")
    assert proc.returncode != 0 and "damaged" in proc.stderr


def test_prune_takes_whole_batches(store):
    db = make_activity(store, NEWEST)
    old = NOW - 100 * 86400
    with db:
        add_batch(db, 1, "policyd", [(old + i, "old%d" % i, "block") for i in range(5)])
        add_batch(db, 6, "policyd", [(old + 10, "old5", "block")])
        # straddles the cutoff: kept whole until its newest decision is old
        add_batch(db, 7, "milter", [(NOW - 91 * 86400, "x", "block"), (NOW - 89 * 86400, "y",
                                                                       "block")])
        add_batch(db, 9, "policyd", [(NOW - 60, "new", "allow")])
    db.close()
    assert js(store, "prune", "--dry-run", "--older-than", "90d")["decisions"] == 6
    out = js(store, "prune", "--older-than", "90d", "--batch", "2")
    assert out["decisions"] == 6 and out["batches"] == 2
    assert activity(store, "SELECT id FROM decision_batches ORDER BY id") == [(7,), (9,)]
    assert js(store, "prune", "--older-than", "90d")["decisions"] == 0
    assert [e["user"] for e in js(store, "log", "--limit", "0")] == ["new", "y", "x"]
