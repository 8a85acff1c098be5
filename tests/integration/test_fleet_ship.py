"""The fleet's activity delivered to PostgreSQL (issue 15, item 3): each
daemon on a PostgreSQL store delivers what its activity writer recorded in
DIR/activity.db (the spool) to the fleet_* tables, keyed by host, each
decision and usage count exactly once: two saslgate-policyd hosts and a
saslgate-milter sharing the activity.db of one of them; PostgreSQL stopped
under running daemons (the spool grows) and started again (delivered, no
duplicates); a daemon killed between PostgreSQL's COMMIT and its own
bookkeeping (no double count after the restart); a user name that is not
UTF-8 delivered byte for byte; a full spool; the daemons' role refused
DELETE and policy writes. The suite runs its own PostgreSQL
(tests/integration/pg_util.py)."""

import json
import os
import signal
import subprocess
import threading
import time

import pytest

from milter_util import MILTER, Milter
from milter_wire import SMFIR_REPLYCODE, session
from pg_util import missing, private_server
from policyd_util import BLOCK_REPLY, CTL, Policyd, activity_rows, encode, postfix_request

pytestmark = pytest.mark.skipif(missing() is not None, reason=missing() or "")

ADMIN = "saslgate_admin"
DAEMON = "saslgate_daemon"
OFFICE_IP = "192.0.2.10"
NOT_UTF8 = b"j\xf6rg@example.test"  # Latin-1, not UTF-8
KILL_HOOK = "SASLGATE_TEST_FLEET_KILL_AFTER_COMMIT"


@pytest.fixture(scope="module")
def pg():
    with private_server(init_ctl=CTL) as server:
        yield server


def one(pg, sql):
    return pg.psql(sql).stdout.strip()


def decisions_of(pg, host):
    """The decisions PostgreSQL holds for host (its batches' n)."""
    return int(one(pg, "SELECT coalesce(sum(n), 0) FROM fleet_decision_batches "
                       "WHERE host = '%s'" % host))


def usage_of(pg, host):
    """{user (bytes): count} of host's fleet_usage rows."""
    out = {}
    for line in one(pg, "SELECT encode(user_name, 'hex'), count FROM fleet_usage "
                        "WHERE host = '%s'" % host).splitlines():
        user, count = line.split("|")
        out[bytes.fromhex(user)] = out.get(bytes.fromhex(user), 0) + int(count)
    return out


def spooled(store_dir):
    return activity_rows(store_dir, "SELECT count(*) FROM fleet_spool")[0][0]


def wait_until(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.05)


def policyd(pg, d, host, settings=None):
    s = {"heartbeat_interval": "1s", "host_name": host, "activity_flush_ms": "50"}
    s.update(settings or {})
    p = Policyd(d, str(d), extra_args=["--store", pg.uri(DAEMON)], settings=s)
    p.wait_log("started:")  # the socket is bound first, the policy read after
    return p


def ask(p, user, n=1):
    """n PLAIN submissions of user (bytes, sent as they are) from the office:
    blocked by the default policy."""
    with p.client() as c:
        for _ in range(n):
            # a new instance each: policyd decides once per message
            c.send(encode(postfix_request(sasl_method="PLAIN", client_address=OFFICE_IP,
                                          sasl_username="@USER@")).replace(b"@USER@", user))
            assert c.read_reply() == BLOCK_REPLY


def milter_mail(m, user, n=1):
    for i in range(n):
        cmd, _ = session(m.address, {"i": "Q%d" % i, "{auth_type}": "PLAIN",
                                     "{auth_authen}": user}, addr=OFFICE_IP)
        assert cmd == SMFIR_REPLYCODE


def test_two_hosts_and_a_milter_sharing_a_spool(pg, tmp_path):
    if not os.path.exists(MILTER):
        pytest.skip("saslgate-milter not built")
    d1, d2 = tmp_path / "mx1", tmp_path / "mx2"
    d1.mkdir()
    d2.mkdir()
    mx1, mx2 = policyd(pg, d1, "mx1"), policyd(pg, d2, "mx2")
    # the milter shares mx1's directory, so its activity.db: both deliver it
    milter = Milter(str(d1), extra_args=["--store", pg.uri(DAEMON), "-o", "host_name=mx1"])
    try:
        threads = [threading.Thread(target=ask, args=(mx1, b"alice@example.com", 40)),
                   threading.Thread(target=milter_mail, args=(milter, "carol@example.test", 25)),
                   threading.Thread(target=ask, args=(mx2, b"bob@example.com", 30))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        ask(mx1, NOT_UTF8, 2)
        want1 = {b"alice@example.com": 40, b"carol@example.test": 25, NOT_UTF8: 2}
        want2 = {b"bob@example.com": 30}
        wait_until(lambda: usage_of(pg, "mx1") == want1 and usage_of(pg, "mx2") == want2 and
                   spooled(str(d1)) == 0 and spooled(str(d2)) == 0, what="delivery")
        assert decisions_of(pg, "mx1") == 67 and decisions_of(pg, "mx2") == 30
        # what PostgreSQL has is what activity.db has (local reports keep working)
        assert activity_rows(str(d1), "SELECT sum(n) FROM decision_batches")[0][0] == 67
        assert activity_rows(str(d2), "SELECT sum(n) FROM decision_batches")[0][0] == 30
        ids = one(pg, "SELECT id, n FROM fleet_decision_batches WHERE host = 'mx1' "
                      "ORDER BY id").splitlines()
        local = activity_rows(str(d1), "SELECT id, n FROM decision_batches ORDER BY id")
        assert [tuple(map(int, r.split("|"))) for r in ids] == local
        # the user that is not UTF-8: byte for byte, in the usage and in the batch
        # (its two submissions may fall into one writer batch or two)
        assert one(pg, "SELECT count(*) FROM fleet_decision_batches WHERE host = 'mx1' AND "
                       "position('\\x%s'::bytea IN data) > 0" % NOT_UTF8.hex()) in ("1", "2")
        assert one(pg, "SELECT mech, network, mech_class, last_outcome, last_client FROM "
                       "fleet_usage WHERE host = 'mx2'") == \
            "PLAIN|192.0.2.0/24|legacy|block|192.0.2.10"
        # one delivery cursor per activity.db; heartbeats of all three daemons
        assert one(pg, "SELECT host, split_part(spool, '#', 1) FROM fleet_delivery "
                       "ORDER BY host").splitlines() == ["mx1|%s" % d1, "mx2|%s" % d2]
        beats = wait_until(lambda: one(
            pg, "SELECT program, host, pid, requests FROM fleet_heartbeats ORDER BY host, "
                "program").splitlines() if one(pg, "SELECT coalesce(sum(requests), 0) FROM "
                                              "fleet_heartbeats") == "97" else None,
            what="heartbeats")
        assert beats == ["milter|mx1|%d|25" % milter.proc.pid, "policyd|mx1|%d|42" % mx1.pid,
                         "policyd|mx2|%d|30" % mx2.pid]
    finally:
        milter.stop()
        mx1.stop()
        mx2.stop()
    assert one(pg, "SELECT program || ':' || stopped FROM fleet_heartbeats WHERE host = 'mx2'") \
        == "policyd:1"
    assert "cannot deliver" not in mx1.log_text() + mx2.log_text() + milter.output()


def test_postgresql_away_and_back(pg, tmp_path):
    d = tmp_path / "mx3"
    d.mkdir()
    p = policyd(pg, d, "mx3")
    try:
        ask(p, b"dave@example.com", 5)
        wait_until(lambda: decisions_of(pg, "mx3") == 5, what="the first delivery")
        pg.stop()
        try:
            # decisions go on; activity.db keeps them in the spool
            for _ in range(4):
                ask(p, b"dave@example.com", 3)
                ask(p, b"erin@example.com", 2)
                time.sleep(0.3)
            p.wait_log("fleet activity: cannot deliver to PostgreSQL")
            wait_until(lambda: activity_rows(
                str(d), "SELECT pending FROM fleet_spool_state")[0][0] == 20,
                what="the spool")
            assert spooled(str(d)) >= 1
        finally:
            pg.start()
        # delivered after the reconnect (backoff), in order, exactly once
        p.wait_log("fleet activity: delivering to PostgreSQL", timeout=90)
        wait_until(lambda: spooled(str(d)) == 0, what="the spool to empty")
        assert decisions_of(pg, "mx3") == 25
        assert usage_of(pg, "mx3") == {b"dave@example.com": 17, b"erin@example.com": 8}
        ask(p, b"erin@example.com", 1)
        wait_until(lambda: decisions_of(pg, "mx3") == 26, what="delivery after the outage")
    finally:
        assert p.stop() == 0
    log = p.log_text()
    assert log.count("fleet activity: cannot deliver") == 1, log
    assert log.count("fleet activity: delivering to PostgreSQL") == 1, log
    assert "FATAL" not in log
    assert usage_of(pg, "mx3") == {b"dave@example.com": 17, b"erin@example.com": 9}


def test_killed_between_commit_and_bookkeeping(pg, tmp_path, monkeypatch):
    d = tmp_path / "mx4"
    d.mkdir()
    monkeypatch.setenv(KILL_HOOK, "1")
    p = policyd(pg, d, "mx4", settings={"activity_flush_ms": "1000"})
    monkeypatch.delenv(KILL_HOOK)
    ask(p, b"frank@example.com", 6)
    assert p.proc.wait(30) == -signal.SIGKILL
    p.kill()
    # PostgreSQL has committed what the process delivered, and the spool
    # still holds those rows: the window between the two commits
    delivered = decisions_of(pg, "mx4")
    assert delivered > 0
    last_seq = int(one(pg, "SELECT last_seq FROM fleet_delivery WHERE host = 'mx4'"))
    first_local = activity_rows(str(d), "SELECT min(seq) FROM fleet_spool")[0][0]
    assert first_local is not None and first_local <= last_seq
    # restarted: those rows are only deleted, the rest delivered, once
    p = policyd(pg, d, "mx4")
    try:
        wait_until(lambda: spooled(str(d)) == 0, what="the spool to empty")
        assert decisions_of(pg, "mx4") == 6
        assert usage_of(pg, "mx4") == {b"frank@example.com": 6}
        ask(p, b"frank@example.com", 2)
        wait_until(lambda: decisions_of(pg, "mx4") == 8, what="delivery after the restart")
        assert usage_of(pg, "mx4") == {b"frank@example.com": 8}
    finally:
        assert p.stop() == 0
    # two heartbeats: the killed process (not stopped) and the restarted one
    assert one(pg, "SELECT count(*), sum(stopped) FROM fleet_heartbeats WHERE host = 'mx4'") \
        == "2|1"


def test_a_full_spool_drops_and_says_so(pg, tmp_path):
    d = tmp_path / "mx5"
    d.mkdir()
    p = policyd(pg, d, "mx5", settings={"fleet_spool_max": "1000",
                                        "activity_flush_ms": "10"})
    try:
        pg.stop()
        try:
            p.wait_log("fleet activity: cannot deliver")
            for _ in range(13):
                ask(p, b"gina@example.com", 100)
            p.wait_log("is full (fleet_spool_max 1000 decisions)")
        finally:
            pg.start()
        wait_until(lambda: spooled(str(d)) == 0, timeout=90, what="the spool to empty")
        delivered = decisions_of(pg, "mx5")
        # the spool took batches while it held at most 1000 decisions; the rest
        # is counted as dropped, usage included; activity.db has every decision
        assert 0 < delivered <= 1000
        assert activity_rows(str(d), "SELECT sum(n) FROM decision_batches")[0][0] == 1300
        assert usage_of(pg, "mx5") == {b"gina@example.com": delivered}
        dropped = wait_until(lambda: int(one(pg, "SELECT coalesce(max(dropped), 0) FROM "
                                                 "fleet_heartbeats WHERE host = 'mx5'")),
                             what="the dropped count")
        assert dropped == 1300 - delivered
    finally:
        assert p.stop() == 0


def test_usage_spanning_batches_never_counts_a_refused_batch(pg, tmp_path):
    """Under a heavy load the writer's usage sums span batches (one upsert
    per key and heartbeat interval, not per batch); a batch the full spool
    refuses must not take the pending sums' decisions with it, nor bring
    its own to PostgreSQL."""
    d = tmp_path / "mx8"
    d.mkdir()
    p = policyd(pg, d, "mx8", settings={"fleet_spool_max": "1000",
                                        "activity_flush_ms": "1500",
                                        "heartbeat_interval": "60s"})
    try:
        pg.stop()
        try:
            p.wait_log("fleet activity: cannot deliver")
            # one batch of 600 (500 or more: its sums stay pending), then one
            # of 600 that would take the spool beyond 1000: refused
            ask(p, b"hank@example.com", 600)
            wait_until(lambda: activity_rows(str(d), "SELECT coalesce(sum(n), 0) FROM "
                                                     "decision_batches")[0][0] == 600,
                       what="the first batch")
            ask(p, b"hank@example.com", 600)
            p.wait_log("is full (fleet_spool_max 1000 decisions)")
            # the first batch's row and the pending sums' row of their own
            # (had the load come in smaller batches, each would carry its
            # sums, and this test would not test what it says)
            assert activity_rows(str(d), "SELECT pending FROM fleet_spool_state")[0][0] == 600
            assert spooled(str(d)) == 2
        finally:
            pg.start()
        wait_until(lambda: spooled(str(d)) == 0 and decisions_of(pg, "mx8") == 600,
                   timeout=90, what="the spool to empty")
        assert usage_of(pg, "mx8") == {b"hank@example.com": 600}
        # activity.db counts both batches
        assert activity_rows(str(d), "SELECT sum(count) FROM usage")[0][0] == 1200
    finally:
        assert p.stop() == 0
    assert usage_of(pg, "mx8") == {b"hank@example.com": 600}


def test_daemon_role_appends_but_never_deletes(pg):
    # what the daemons wrote above, as the daemons' role: readable ...
    assert int(one(pg, "SELECT count(*) FROM fleet_delivery")) >= 0
    assert pg.psql("SELECT count(*) FROM fleet_usage", user=DAEMON).returncode == 0
    # ... appendable (the delivery runs as that role) ...
    pg.psql("INSERT INTO fleet_heartbeats (program, host, pid, started_at, last_seen) "
            "VALUES ('policyd', 'role-test', 1, 0, 0)", user=DAEMON)
    # ... never deleted, and the policy stays read-only
    for sql in ("DELETE FROM fleet_usage",
                "DELETE FROM fleet_decision_batches",
                "DELETE FROM fleet_delivery",
                "DELETE FROM fleet_heartbeats WHERE host = 'role-test'",
                "DELETE FROM fleet_auth_results",
                "TRUNCATE fleet_usage",
                "INSERT INTO locations (name, created_at) VALUES ('evil', 0)",
                "UPDATE policies SET state = 'off'",
                "UPDATE settings SET value = '999' WHERE key = 'generation'"):
        proc = pg.psql(sql, user=DAEMON, check=False)
        assert proc.returncode != 0, sql
        assert "permission denied" in proc.stderr, (sql, proc.stderr)
    assert one(pg, "SELECT count(*) FROM fleet_heartbeats WHERE host = 'role-test'") == "1"
    assert one(pg, "SELECT state FROM policies") == "enforce"


def test_dovecot_reports_and_heartbeats_follow_the_latest_state(pg, tmp_path):
    d = tmp_path / "mx6"
    d.mkdir()
    p = Policyd(d, str(d), extra_args=["--store", pg.uri(DAEMON)], http=True,
                settings={"heartbeat_interval": "1s", "host_name": "mx6"})
    try:
        with p.http() as h:
            for _ in range(3):
                assert h.report(success=True)[0] == 200
            assert h.report(success=False)[0] == 200
        want = ["policyd|%d|imap|legacy|failure|1" % p.pid,
                "policyd|%d|imap|legacy|success|3" % p.pid]
        wait_until(lambda: one(pg, "SELECT program, pid, service, mech_class, result, count "
                                   "FROM fleet_auth_results WHERE host = 'mx6' "
                                   "ORDER BY result").splitlines() == want,
                   what="the report totals")
        # totals, not sums: delivered again with every heartbeat, still 3 and 1
        time.sleep(2.5)
        assert one(pg, "SELECT sum(count) FROM fleet_auth_results WHERE host = 'mx6'") == "4"
        # the heartbeat follows the newest beat
        beat = lambda: int(one(pg, "SELECT last_seen FROM fleet_heartbeats "  # noqa: E731
                                   "WHERE host = 'mx6'"))
        first = beat()
        wait_until(lambda: beat() > first, what="a newer heartbeat")
        assert one(pg, "SELECT count(*) FROM fleet_heartbeats WHERE host = 'mx6'") == "1"
    finally:
        assert p.stop() == 0
    assert one(pg, "SELECT stopped FROM fleet_heartbeats WHERE host = 'mx6'") == "1"


def test_decision_ids_go_on_after_a_prune_emptied_the_log(pg, tmp_path):
    d = tmp_path / "mx7"
    d.mkdir()
    p = policyd(pg, d, "mx7")
    try:
        ask(p, b"hank@example.com", 3)
        wait_until(lambda: decisions_of(pg, "mx7") == 3 and spooled(str(d)) == 0,
                   what="the first delivery")
        time.sleep(2.1)
        proc = subprocess.run([CTL, "-d", str(d), "prune", "--older-than", "1s"],
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert activity_rows(str(d), "SELECT count(*) FROM decision_batches") == [(0,)]
        # PostgreSQL keeps batches by host and id: the next ids are new ones
        ask(p, b"hank@example.com", 2)
        wait_until(lambda: decisions_of(pg, "mx7") == 5, what="the decisions after the prune")
        assert int(one(pg, "SELECT min(id) FROM fleet_decision_batches WHERE host = 'mx7' "
                           "AND id > 1")) >= 4
    finally:
        assert p.stop() == 0
    assert "in PostgreSQL already" not in p.log_text()


def test_a_recreated_activity_db_keeps_its_decisions(pg, tmp_path):
    """An activity.db removed (or lost) and made anew numbers its decisions
    from 1 again: its spool's ids are raised above the host's (schema 3's
    fleet_delivery.id_offset), so PostgreSQL keeps every decision."""
    d = tmp_path / "mx10"
    d.mkdir()
    p = policyd(pg, d, "mx10")
    try:
        ask(p, b"ida@example.com", 3)
        wait_until(lambda: decisions_of(pg, "mx10") == 3 and spooled(str(d)) == 0,
                   what="the first delivery")
    finally:
        assert p.stop() == 0
    for f in os.listdir(str(d)):
        if f.startswith("activity.db"):
            os.unlink(os.path.join(str(d), f))
    p = policyd(pg, d, "mx10")
    try:
        ask(p, b"ida@example.com", 4)
        # the new activity.db starts at 1 again; PostgreSQL has all 7
        wait_until(lambda: decisions_of(pg, "mx10") == 7 and spooled(str(d)) == 0,
                   what="the decisions of the new activity.db")
        assert activity_rows(str(d), "SELECT min(id) FROM decision_batches")[0][0] == 1
    finally:
        assert p.stop() == 0
    assert "in PostgreSQL already" not in p.log_text()
    assert one(pg, "SELECT string_agg(id_offset::text, ' ' ORDER BY id_offset) "
                   "FROM fleet_delivery WHERE host = 'mx10'") == "0 3"
    assert int(one(pg, "SELECT max(id + n - 1) FROM fleet_decision_batches "
                       "WHERE host = 'mx10'")) == 7
    # the fleet's log names all seven, each id once
    log = json.loads(ctl_fleet(pg, "--json", "log", "--user", "ida@example.com").stdout)
    assert len(log) == 7 and len({e["id"] for e in log}) == 7


def test_many_usage_keys_in_one_delivery(pg, tmp_path):
    """Usage goes to PostgreSQL in statements of 64, 8 and 1 rows: 150 keys
    (2 x 64 + 2 x 8 + 6 x 1) of one spool row, two of them twice, arrive as
    activity.db has them, each count once."""
    d = tmp_path / "mx11"
    d.mkdir()
    p = policyd(pg, d, "mx11", settings={"activity_flush_ms": "2000"})
    users = [("u%03d@example.com" % i).encode() for i in range(150)]
    try:
        with p.client() as c:
            for i, user in enumerate(users + users[:2]):
                c.send(encode(postfix_request(sasl_method="PLAIN", client_address=OFFICE_IP,
                                              sasl_username="@USER@",
                                              instance="many-%d" % i)).replace(b"@USER@", user))
                assert c.read_reply() == BLOCK_REPLY
        wait_until(lambda: decisions_of(pg, "mx11") == 152 and spooled(str(d)) == 0,
                   what="the delivery")
    finally:
        assert p.stop() == 0
    local = sorted(activity_rows(str(d), "SELECT user, mech, network, count, last_outcome, "
                                         "last_client, last_service FROM usage"))
    fleet = sorted(tuple(line.split("|")) for line in one(
        pg, "SELECT convert_from(user_name, 'UTF8'), mech, network, count, last_outcome, "
            "last_client, last_service FROM fleet_usage WHERE host = 'mx11'").splitlines())
    assert len(local) == 150 and [tuple(str(v) for v in row) for row in local] == fleet
    assert usage_of(pg, "mx11")[users[0]] == 2 and usage_of(pg, "mx11")[users[2]] == 1


def ctl_fleet(pg, *args):
    """saslgatectl --store URI ARGS, as an administrator on any host runs it."""
    proc = subprocess.run([CTL, "-d", "/nonexistent", "--store", pg.uri(ADMIN), *args],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode in (0, 1), proc.stderr
    return proc


def test_what_the_daemons_delivered_is_what_the_fleet_reports_show(pg, tmp_path):
    """Both halves together: decisions made by two hosts' daemons, delivered
    by them, answered by saslgatectl --store from PostgreSQL with the host
    that decided (report legacy, log, stats, status)."""
    import json

    d1, d2 = tmp_path / "a1", tmp_path / "a2"
    d1.mkdir()
    d2.mkdir()
    h1, h2 = policyd(pg, d1, "imap-a"), policyd(pg, d2, "imap-b")
    try:
        ask(h1, b"dora@example.org", 3)
        ask(h2, b"dora@example.org", 2)
        ask(h2, b"eve@example.org", 4)
        wait_until(lambda: usage_of(pg, "imap-a").get(b"dora@example.org") == 3 and
                   usage_of(pg, "imap-b").get(b"eve@example.org") == 4 and
                   spooled(str(d1)) == 0 and spooled(str(d2)) == 0, what="delivery")
        report = json.loads(ctl_fleet(pg, "--json", "report", "legacy").stdout)
        users = {u["user"]: u for u in report["users"]}
        assert users["dora@example.org"]["count"] == 5
        assert users["dora@example.org"]["hosts"] == ["imap-a", "imap-b"]
        assert (users["eve@example.org"]["count"], users["eve@example.org"]["hosts"]) == \
            (4, ["imap-b"])
        log = json.loads(ctl_fleet(pg, "--json", "log", "--user", "dora@example.org").stdout)
        assert sorted(d["host"] for d in log) == ["imap-a"] * 3 + ["imap-b"] * 2
        assert {d["outcome"] for d in log} == {"block"}
        prom = ctl_fleet(pg, "stats", "--format", "prometheus").stdout
        assert 'host="imap-a"' in prom and 'host="imap-b"' in prom
        # every host's daemon, with where its snapshot came from (delivered
        # with its heartbeat)
        def fleet_daemons():
            st = json.loads(ctl_fleet(pg, "--json", "status").stdout)
            return {(d["host"], d["pid"]): d for d in st["daemons"]}

        want = {("imap-a", h1.pid), ("imap-b", h2.pid)}
        daemons = wait_until(lambda: (lambda ds: ds if want <= set(ds) and all(
            ds[k]["snapshot_source"] == "postgresql" for k in want) else None)(fleet_daemons()),
            what="both daemons' heartbeats with their snapshot source")
        assert all(daemons[k]["snapshot_age"] >= 0 for k in want)
    finally:
        h1.stop()
        h2.stop()
