"""The PostgreSQL store (issue 15, the policy side): saslgatectl init, edits
and explain against a real PostgreSQL; two saslgate-policyd and a
saslgate-milter sharing it, each with its own -d DIR (its cache); a change
made on one host seen by every daemon; PostgreSQL stopped and started again
under running daemons; two saslgatectl racing; the daemons' role refused a
policy write. The suite runs its own PostgreSQL (tests/integration/pg_util.py).
"""

import json
import os
import subprocess
import threading
import time

import pytest

from milter_util import MILTER, Milter
from milter_wire import SMFIR_ACCEPT, SMFIR_CONTINUE, SMFIR_REPLYCODE, reply_text, session
from pg_util import PG_BIN, PostgresServer, missing, private_server
from policyd_util import BLOCK_REPLY, CTL, DUNNO, Policyd, free_port, wait_for

pytestmark = pytest.mark.skipif(missing() is not None, reason=missing() or "")

ADMIN = "saslgate_admin"
DAEMON = "saslgate_daemon"
OFFICE_IP = "192.0.2.10"  # the milter_wire default client address
MILTER_PLAIN = {"i": "Q1", "{auth_type}": "PLAIN", "{auth_authen}": "alice@example.test"}
MILTER_BLOCK = ("550 5.7.9 Authentication mechanism PLAIN is not allowed; "
                "use OAuth2 (XOAUTH2/OAUTHBEARER)")
CONFLICT = ("another saslgatectl changed the policy in PostgreSQL database saslgate on "
            "127.0.0.1:%d as saslgate_admin meanwhile; nothing was changed, run the "
            "command again")


@pytest.fixture(scope="module")
def pg():
    with private_server() as server:
        yield server


def ctl(pg, *args, user=ADMIN, store_dir="/nonexistent", env=None):
    """saslgatectl --store URI ARGS -> CompletedProcess."""
    return subprocess.run([CTL, "-d", store_dir, "--store", pg.uri(user)] + list(args),
                          capture_output=True, text=True, timeout=30, env=env)


def ctl_ok(pg, *args, **kw):
    proc = ctl(pg, *args, **kw)
    assert proc.returncode == 0, "saslgatectl %s -> %d\n%s%s" % (
        " ".join(args), proc.returncode, proc.stdout, proc.stderr)
    return proc.stdout


def generation(pg):
    return int(pg.psql("SELECT value FROM settings WHERE key = 'generation'").stdout)


@pytest.fixture(scope="module")
def store(pg):
    """saslgatectl --store URI init, as the administrator runs it, and a
    location for the office the tests' clients come from."""
    out = ctl_ok(pg, "init")
    assert "Created the saslgate store in PostgreSQL database saslgate on 127.0.0.1" in out
    assert 'saslgatectl exception add --location loopback' in out
    ctl_ok(pg, "location", "add", "office", OFFICE_IP + "/32")
    return pg


def test_init_check_and_the_defaults(store):
    pg = store
    check = json.loads(ctl_ok(pg, "--json", "check"))
    assert check["ok"] is True and check["tables"] is True and check["compiles"] is True
    assert check["schema_version"] == check["schema_version_expected"] == 3
    assert (check["policies"], check["locations"]) == (1, 2)
    # the same defaults as the SQLite init: policy, location, catalogue
    export = json.loads(ctl_ok(pg, "export"))
    assert [(p["name"], p["state"], p["mechs"]) for p in export["policies"]] == [
        ("block-legacy", "enforce", "legacy")]
    assert "loopback" in [loc["name"] for loc in export["locations"]]
    locations = ctl_ok(pg, "location", "list")
    assert "127.0.0.0/8" in locations and "::1/128" in locations
    mechs = ctl_ok(pg, "mech", "list")
    assert "PLAIN" in mechs and "XOAUTH2" in mechs
    # init refuses an initialised database, and changes nothing
    before = generation(pg)
    again = ctl(pg, "init")
    assert again.returncode == 1
    assert "has a saslgate store already (schema version 3); refusing to overwrite" in \
        again.stderr
    assert generation(pg) == before
    # the schema_version table, the tables of schema/pg/policy-001.sql and
    # the fleet's activity (policy-002.sql)
    assert pg.psql("SELECT version FROM schema_version WHERE name = 'policy'").stdout.strip() \
        == "3"
    assert pg.psql("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'fleet_%'").stdout \
        .strip() == "5"


def back_to_version_2(pg, db):
    """The store in database db as schema version 2 left it."""
    pg.psql("ALTER TABLE fleet_delivery DROP COLUMN id_offset; "
            "ALTER TABLE fleet_decision_batches ALTER COLUMN data SET COMPRESSION pglz; "
            "CREATE INDEX fleet_usage_last_seen ON fleet_usage (last_seen); "
            "ALTER TABLE fleet_usage RESET (fillfactor); "
            "UPDATE schema_version SET version = 2", user=ADMIN, database=db)


def test_a_version_2_store_is_migrated(pg):
    """A store made by schema version 2 (the fleet tables without
    fleet_delivery.id_offset, pglz batches) is migrated to 3 by the next
    saslgatectl, in place, its policy kept."""
    from pg_util import ROLES_SQL
    db = "saslgate_v2"
    pg.psql("CREATE DATABASE %s" % db, database="postgres")
    pg.psql(file=ROLES_SQL, database=db)
    uri = pg.uri(ADMIN, database=db)
    run = lambda *a: subprocess.run([CTL, "-d", "/nonexistent", "--store", uri, *a],
                                    capture_output=True, text=True, timeout=30)
    assert run("init").returncode == 0
    assert run("location", "add", "office", OFFICE_IP + "/32").returncode == 0
    # what version 2 left
    back_to_version_2(pg, db)
    listed = run("location", "list")
    assert listed.returncode == 0, listed.stderr
    assert "office" in listed.stdout
    one = lambda sql: pg.psql(sql, database=db).stdout.strip()
    assert one("SELECT version FROM schema_version WHERE name = 'policy'") == "3"
    assert one("SELECT attcompression FROM pg_attribute WHERE attname = 'data' AND "
               "attrelid = 'fleet_decision_batches'::regclass") == "l"
    assert one("SELECT count(*) FROM information_schema.columns WHERE "
               "table_name = 'fleet_delivery' AND column_name = 'id_offset'") == "1"
    # usage updates can be HOT: no index on last_seen, room on each page
    assert one("SELECT count(*) FROM pg_indexes WHERE indexname = 'fleet_usage_last_seen'") \
        == "0"
    assert one("SELECT reloptions FROM pg_class WHERE relname = 'fleet_usage'") == \
        "{fillfactor=80}"
    check = json.loads(run("--json", "check").stdout)
    assert check["ok"] is True and check["schema_version"] == 3


def test_an_upgraded_daemon_before_the_schema_is(pg, tmp_path):
    """A fleet upgraded host by host: a daemon of the new version on a store
    still at the old schema serves its cached policy and says why (log,
    status); once saslgatectl has migrated the store it reads PostgreSQL
    again, and the next change is served."""
    from pg_util import ROLES_SQL
    db = "saslgate_upgrade"
    pg.psql("CREATE DATABASE %s" % db, database="postgres")
    pg.psql(file=ROLES_SQL, database=db)
    run = lambda *a: subprocess.run([CTL, "-d", "/nonexistent", "--store",
                                     pg.uri(ADMIN, database=db), *a],
                                    capture_output=True, text=True, timeout=30)
    assert run("init").returncode == 0
    d = tmp_path / "mx"
    d.mkdir()
    store = ["--store", pg.uri(DAEMON, database=db)]
    p = Policyd(d, str(d), extra_args=store, settings={"heartbeat_interval": "1s"})
    assert policyd_decides(p) == BLOCK_REPLY  # and its cache is written
    assert p.stop() == 0
    back_to_version_2(pg, db)
    p = Policyd(d, str(d), extra_args=store, settings={"heartbeat_interval": "1s"})
    try:
        assert policyd_decides(p) == BLOCK_REPLY
        p.wait_log("PostgreSQL has policy schema version 2, this program needs 3")
        def degraded():
            out = subprocess.run([CTL, "-d", str(d), "--json", "status"], capture_output=True,
                                 text=True, timeout=30)
            beats = [h for h in json.loads(out.stdout)["daemons"] if h.get("pid") == p.pid]
            return beats[0] if beats and beats[0]["degraded"] else None
        beat = wait_for(degraded, timeout=10)
        assert beat and "schema version 2" in beat["degraded_reason"]
        # the administrator migrates the store; the daemon reads it again
        assert run("location", "add", "office", OFFICE_IP + "/32").returncode == 0
        assert run("exception", "add", "--location", "office", "--permanent",
                   "--reason", "after the upgrade").returncode == 0
        assert wait_for(lambda: policyd_decides(p) == DUNNO, timeout=15)
    finally:
        assert p.stop() == 0


def test_edits_and_explain(store):
    pg = store
    explain = ["explain", "--user", "bob@example.com", "--ip", "198.51.100.7", "--mech", "PLAIN"]
    blocked = ctl(pg, *explain)
    assert blocked.returncode == 1 and "outcome:    block" in blocked.stdout
    g = generation(pg)
    added = ctl(pg, "--json", "exception", "add", "--user", "bob@example.com", "--permanent",
                "--reason", "scanner")
    assert added.returncode == 0, added.stderr
    exc_id = json.loads(added.stdout)["id"]
    assert generation(pg) == g + 1
    allowed = ctl(pg, *explain)
    assert allowed.returncode == 0 and "outcome:    allow" in allowed.stdout
    assert "exception #%d" % exc_id in allowed.stdout
    # invalid input: the same message and exit status as with SQLite, nothing pushed
    bad = ctl(pg, "policy", "set", "block-legacy", "--state", "bogus")
    assert bad.returncode == 2 and "--state" in bad.stderr
    assert generation(pg) == g + 1
    # the audit trail is PostgreSQL's too
    audit = ctl_ok(pg, "audit")
    assert "exception add" in audit and "exception #%d" % exc_id in audit
    ctl_ok(pg, "exception", "remove", str(exc_id))
    assert ctl(pg, *explain).returncode == 1
    # a removed exception's id is never given again (the sequence is kept)
    again = json.loads(ctl_ok(pg, "--json", "exception", "add", "--user", "bob@example.com",
                              "--permanent", "--reason", "again"))
    assert again["id"] > exc_id
    ctl_ok(pg, "exception", "remove", str(again["id"]))


def test_daemon_role_refused_a_policy_write(store):
    pg = store
    g = generation(pg)
    # it reads the policy ...
    assert pg.psql("SELECT name FROM policies", user=DAEMON).stdout.strip() == "block-legacy"
    # ... and cannot change it, nor read the audit trail
    for sql in ("INSERT INTO locations (name, created_at) VALUES ('evil', 0)",
                "UPDATE policies SET state = 'off'",
                "UPDATE settings SET value = '999' WHERE key = 'generation'",
                "DELETE FROM exceptions",
                "TRUNCATE mechanisms",
                "CREATE TABLE planted (x int)",
                "SELECT * FROM audit"):
        proc = pg.psql(sql, user=DAEMON, check=False)
        assert proc.returncode != 0, sql
        assert "permission denied" in proc.stderr, (sql, proc.stderr)
    # saslgatectl with the daemons' role: refused, nothing changed
    proc = ctl(pg, "policy", "set", "block-legacy", "--state", "off", user=DAEMON)
    assert proc.returncode == 1 and "permission denied" in proc.stderr
    assert generation(pg) == g
    assert pg.psql("SELECT state FROM policies").stdout.strip() == "enforce"


def policyd_decides(p):
    with p.client() as c:
        return c.ask(client_address=OFFICE_IP)


def milter_decides(m):
    cmd, data = session(m.address, MILTER_PLAIN, addr=OFFICE_IP)
    if cmd == SMFIR_REPLYCODE:
        assert reply_text(data) == MILTER_BLOCK
        return "block"
    assert cmd in (SMFIR_ACCEPT, SMFIR_CONTINUE)
    return "allow"


@pytest.fixture(scope="module")
def fleet(store, tmp_path_factory):
    """Two policyd and a milter on the shared store, each with its own DIR."""
    pg = store
    daemons = {}
    try:
        for name in ("mx1", "mx2"):
            d = tmp_path_factory.mktemp(name)
            daemons[name] = Policyd(d, str(d), extra_args=["--store", pg.uri(DAEMON)],
                                    settings={"heartbeat_interval": "1s"})
        md = str(tmp_path_factory.mktemp("milter1"))
        daemons["milter1"] = Milter(md, extra_args=["--store", pg.uri(DAEMON)])
        yield daemons
    finally:
        for d in daemons.values():
            d.stop()


def decisions(fleet):
    out = {}
    for name, d in fleet.items():
        if isinstance(d, Milter):
            out[name] = milter_decides(d)
        else:
            reply = policyd_decides(d)
            assert reply in (BLOCK_REPLY, DUNNO), reply
            out[name] = "block" if reply == BLOCK_REPLY else "allow"
    return out


def wait_all(fleet, want, timeout=5.0):
    """Asks every daemon until it decides want; returns the delay of each (s)
    from now, and whether the very first request already saw it."""
    start = time.monotonic()
    delays, first = {}, {}
    while len(delays) < len(fleet):
        for name, d in fleet.items():
            if name in delays:
                continue
            got = decisions({name: d})[name]
            first.setdefault(name, got == want)
            if got == want:
                delays[name] = time.monotonic() - start
        assert time.monotonic() - start < timeout, "not picked up: %s" % decisions(fleet)
        time.sleep(0.002)
    return delays, first


def test_a_change_is_seen_by_every_daemon(store, fleet, tmp_path):
    pg = store
    assert set(decisions(fleet).values()) == {"block"}
    for name in ("mx1", "mx2"):
        assert os.path.exists(os.path.join(fleet[name].store_dir, "policy-cache.db"))
    samples = []
    firsts = []
    for _ in range(3):
        # another host: saslgatectl with its own -d DIR
        exc = json.loads(ctl_ok(pg, "--json", "exception", "add", "--location", "office",
                                "--permanent", "--reason", "pickup", store_dir=str(tmp_path)))
        delays, first = wait_all(fleet, "allow")
        samples += delays.values()
        firsts += first.values()
        ctl_ok(pg, "exception", "remove", str(exc["id"]))
        delays, first = wait_all(fleet, "block")
        samples += delays.values()
        firsts += first.values()
    samples.sort()
    print("\npickup delay after saslgatectl returned, %d samples: median %.1f ms, max %.1f ms; "
          "first request already new: %d of %d" % (
              len(samples), 1000 * samples[len(samples) // 2], 1000 * samples[-1],
              sum(firsts), len(firsts)))
    assert samples[-1] < 1.0


def count(text, needle):
    return text.count(needle)


def test_postgresql_away_and_back(store, fleet, tmp_path):
    pg = store
    mx1, mx2, milter1 = fleet["mx1"], fleet["mx2"], fleet["milter1"]
    assert set(decisions(fleet).values()) == {"block"}
    pg.stop()
    try:
        # decisions go on from the cache, and the outage is logged
        for d in (mx1, mx2):
            d.wait_log("unavailable, enforcing the cached policy generation")
        assert set(decisions(fleet).values()) == {"block"}
        # saslgatectl cannot change anything, and says so
        proc = ctl(pg, "policy", "set", "block-legacy", "--state", "off")
        assert proc.returncode == 1 and "cannot connect to PostgreSQL" in proc.stderr
        # a daemon restarted during the outage starts from its cache and enforces
        assert mx2.stop() == 0
        mx2 = fleet["mx2"] = Policyd(mx2.tmp_path, mx2.store_dir,
                                     extra_args=["--store", pg.uri(DAEMON)],
                                     settings={"heartbeat_interval": "1s"})
        assert policyd_decides(mx2) == BLOCK_REPLY
        mx2.wait_log("unavailable, enforcing the cached policy generation")
        # it shows as degraded, with the reason, in status (heartbeats)
        def heartbeat():
            status = subprocess.run([CTL, "-d", mx2.store_dir, "--json", "status"],
                                    capture_output=True, text=True, timeout=30)
            beats = [h for h in json.loads(status.stdout)["daemons"]
                     if h.get("pid") == mx2.pid]
            return beats[0] if beats else None
        beat = wait_for(heartbeat, timeout=5)
        assert beat and beat["degraded"] is True
        assert "unavailable, serving the cached policy generation" in beat["degraded_reason"]
        assert "\n" not in beat["degraded_reason"]
        time.sleep(1.5)  # a few reconnect attempts fail
        assert set(decisions(fleet).values()) == {"block"}
        # a daemon with neither PostgreSQL nor a cache refuses to start
        empty = str(tmp_path / "empty")
        os.mkdir(empty)
        proc = subprocess.run([os.path.join(os.path.dirname(CTL), "saslgate-policyd"), "-n",
                               "-d", empty, "--store", pg.uri(DAEMON)],
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode != 0 and "no usable cached policy" in proc.stdout + proc.stderr
    finally:
        pg.start()
    # reconnect (the backoff starts at 1 s), then changes are seen again
    for d in (fleet["mx1"], fleet["mx2"]):
        d.wait_log("available again after", timeout=15)
    exc = json.loads(ctl_ok(pg, "--json", "exception", "add", "--location", "office",
                            "--permanent", "--reason", "after the outage"))
    wait_all(fleet, "allow")
    ctl_ok(pg, "exception", "remove", str(exc["id"]))
    wait_all(fleet, "block")
    for d in (fleet["mx1"], fleet["mx2"]):
        # the log file of mx2 has both of its processes: the restarted one
        log = d.log_text().split("running as root")[-1]
        assert count(log, "unavailable, enforcing the cached policy") == 1, log
        assert count(log, "available again after") == 1, log
        assert "FATAL" not in log  # libpq's own notices are not printed
    assert "unavailable, enforcing" in milter1.output()
    assert count(milter1.output(), "available again after") <= 1


def test_two_saslgatectl_at_once_one_wins(store, tmp_path):
    pg = store
    g = generation(pg)
    # Hold the generation row so that both pull the same generation and
    # then wait at the push; release it once both wait.
    holder = subprocess.Popen(
        [os.path.join(PG_BIN, "psql"), "-X", "-q", "-h", "127.0.0.1", "-p", str(pg.port),
         "-U", "postgres", "-d", "saslgate"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    holder.stdin.write("BEGIN;\nSELECT value FROM settings WHERE key = 'generation' "
                       "FOR UPDATE;\n\\echo locked\n")
    holder.stdin.flush()
    while True:
        line = holder.stdout.readline()
        assert line, "psql: " + holder.stderr.read()
        if "locked" in line:
            break
    results = {}

    def edit(name):
        results[name] = ctl(pg, "location", "add", name, "198.51.100.0/24",
                            store_dir=str(tmp_path))

    threads = [threading.Thread(target=edit, args=(n,)) for n in ("east", "west")]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while int(pg.psql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                      "AND application_name = 'saslgatectl'").stdout) < 2:
        assert time.monotonic() < deadline, "the two saslgatectl did not both wait"
        time.sleep(0.02)
    holder.stdin.write("COMMIT;\n")
    holder.stdin.close()
    holder.wait(10)
    for t in threads:
        t.join(30)
    codes = sorted(p.returncode for p in results.values())
    assert codes == [0, 1], {n: (p.returncode, p.stderr) for n, p in results.items()}
    loser = [p for p in results.values() if p.returncode == 1][0]
    assert loser.stderr.strip() == "saslgatectl: " + CONFLICT % pg.port
    assert loser.stdout == ""
    winner = [n for n, p in results.items() if p.returncode == 0][0]
    names = pg.psql("SELECT name FROM locations WHERE name IN ('east', 'west')").stdout.split()
    assert names == [winner]
    assert generation(pg) == g + 1
    # the loser runs the command again, and it works
    other = ({"east", "west"} - {winner}).pop()
    ctl_ok(pg, "location", "add", other, "198.51.100.0/24")
    for n in ("east", "west"):
        ctl_ok(pg, "location", "remove", n)


def test_store_from_the_environment(store, tmp_path):
    pg = store
    env = dict(os.environ, SASLGATE_STORE=pg.uri(ADMIN))
    proc = subprocess.run([CTL, "-d", str(tmp_path), "policy", "list"], capture_output=True,
                          text=True, timeout=30, env=env)
    assert proc.returncode == 0 and "block-legacy" in proc.stdout
    # the SQLite store in DIR is not looked at
    assert not os.path.exists(os.path.join(str(tmp_path), "policy.db"))
    bad = subprocess.run([CTL, "--store", "postgresql://[bad", "policy", "list"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "--store" in bad.stderr
    # a server that is not there: a clear failure, exit status 1
    down = subprocess.run([CTL, "--store", "postgresql://x@127.0.0.1:%d/saslgate" % free_port(),
                           "policy", "list"], capture_output=True, text=True, timeout=30)
    assert down.returncode == 1 and "cannot connect to PostgreSQL" in down.stderr


@pytest.mark.skipif(not os.path.exists(MILTER), reason="saslgate-milter not built")
def test_milter_reads_the_shared_store(store, fleet):
    assert milter_decides(fleet["milter1"]) == "block"
    assert os.path.exists(os.path.join(fleet["milter1"].store_dir, "policy-cache.db"))


def test_a_daemon_on_a_hot_standby(store, tmp_path):
    """A standby has no LISTEN: the daemon reads the policy there and asks the
    generation once a second instead; saslgatectl writes to the primary."""
    pg = store
    standby = PostgresServer(primary=pg)
    try:
        standby.start()
        assert standby.psql("SELECT pg_is_in_recovery()").stdout.strip() == "t"
        d = tmp_path / "replica-mx"
        d.mkdir()
        p = Policyd(d, str(d), extra_args=["--store", standby.uri(DAEMON)],
                    settings={"heartbeat_interval": "1s"})
        try:
            assert policyd_decides(p) == BLOCK_REPLY
            exc = json.loads(ctl_ok(pg, "--json", "exception", "add", "--location", "office",
                                    "--permanent", "--reason", "replica"))
            start = time.monotonic()
            while policyd_decides(p) != DUNNO:
                assert time.monotonic() - start < 5, p.log_text()
                time.sleep(0.02)
            delay = time.monotonic() - start
            print("\npickup on a hot standby: %.0f ms" % (1000 * delay))
            assert delay < 2.5
            ctl_ok(pg, "exception", "remove", str(exc["id"]))
            assert "unavailable" not in p.log_text()
        finally:
            assert p.stop() == 0
    finally:
        standby.remove()
