"""Fleet-wide answers (issue 15, item 4): saslgatectl --store URI report
legacy, log, stats, status, report html and prune read the fleet tables of
PostgreSQL (schema/pg/policy-002.sql) and name the host that decided. The
tests seed two hosts' activity directly with SQL (batches in the encoding of
lib/decision_batch.h, user names as bytea, one of them not UTF-8), and check
that the PostgreSQL read path answers as the SQLite one does for the same
single host's data (a running saslgate-policyd's activity.db copied into
the fleet tables). The suite runs its own PostgreSQL (pg_util.py)."""

import json
import os
import re
import sqlite3
import subprocess
import time

import pytest

from pg_util import missing, private_server
from policyd_util import CTL, Policyd, encode, free_port, postfix_request
from visibility_util import FAST, ok, parse_prometheus, run, wait_for, wait_logged

pytestmark = pytest.mark.skipif(missing() is not None, reason=missing() or "")

ADMIN = "saslgate_admin"
ALICE = "alice@example.test"
BOB = "bob@example.test"
CAFE = b"caf\xe9@example.test"  # Latin-1: not UTF-8
FLEET_TABLES = ("fleet_decision_batches", "fleet_usage", "fleet_heartbeats",
                "fleet_auth_results", "fleet_delivery")
FIELDS = ("at", "queue_id", "instance", "user", "client", "mech", "mech_class", "tls",
          "service", "sender", "outcome", "policy", "report_only", "generation")


@pytest.fixture(scope="module")
def pg():
    with private_server(init_ctl=CTL) as server:
        yield server


def ctl(pg, *args, uri=None):
    """saslgatectl --store URI ARGS (bytes allowed) -> CompletedProcess."""
    return subprocess.run([CTL, "-d", "/nonexistent", "--store", uri or pg.uri(ADMIN)] +
                          list(args), capture_output=True, text=True, errors="surrogateescape",
                          timeout=60)


def ctl_ok(pg, *args):
    proc = ctl(pg, *args)
    assert proc.returncode == 0, "saslgatectl %r -> %d\n%s%s" % (
        args, proc.returncode, proc.stdout, proc.stderr)
    return proc.stdout


def ctl_json(pg, *args):
    return json.loads(ctl_ok(pg, "--json", *args))


def exact(s):
    """A --json string back to its bytes (invalid UTF-8 comes as lone
    surrogates: Python's surrogateescape)."""
    return s.encode("utf-8", "surrogateescape")


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


# ---------------------------------------------------------------- seeding

def as_bytes(v):
    return v if isinstance(v, bytes) else str(v).encode()


def json_text(v):
    """A batch field as the daemons' encoder writes it (decision_batch.c)."""
    if v is None or v == "" or v == b"":
        return b"null"
    out = bytearray(b'"')
    for ch in as_bytes(v):
        if ch in (0x22, 0x5C):
            out += b"\\" + bytes([ch])
        elif ch < 0x20:
            out += b"\\u%04x" % ch
        else:
            out.append(ch)
    return bytes(out + b'"')


def batch(decisions):
    rows = []
    for d in decisions:
        fields = []
        for f in FIELDS:
            v = d.get(f)
            if f in ("at", "generation"):
                fields.append(b"%d" % (v or 0))
            elif f == "tls":
                fields.append(b"1" if v else b"0")
            else:
                fields.append(json_text(v))
        rows.append(b"[" + b",".join(fields) + b"]")
    return b"[" + b",".join(rows) + b"]"


def lit(v):
    """An SQL literal: bytes as bytea, None as NULL, numbers as they are."""
    if v is None:
        return "NULL"
    if isinstance(v, bytes):
        return "'\\x%s'::bytea" % v.hex()
    if isinstance(v, int):
        return str(v)
    return "'%s'" % str(v).replace("'", "''")


def insert(table, rows):
    if not rows:
        return ""
    cols = list(rows[0].keys())
    return "INSERT INTO %s (%s) VALUES %s;\n" % (
        table, ", ".join(cols),
        ", ".join("(%s)" % ", ".join(lit(r[c]) for c in cols) for r in rows))


def seed(pg, batches=(), usage=(), heartbeats=(), auth=()):
    """Replaces the fleet tables' rows (as saslgate_admin, through psql)."""
    sql = "BEGIN;\n" + "".join("DELETE FROM %s;\n" % t for t in FLEET_TABLES)
    sql += insert("fleet_decision_batches", [
        {"host": host, "id": first_id, "daemon": daemon,
         "first_at": min(d["at"] for d in ds), "last_at": max(d["at"] for d in ds),
         "n": len(ds), "data": batch(ds)} for host, first_id, daemon, ds in batches])
    sql += insert("fleet_usage", [dict(u, user_name=as_bytes(u["user_name"])) for u in usage])
    sql += insert("fleet_heartbeats", list(heartbeats))
    sql += insert("fleet_auth_results", list(auth))
    path = os.path.join(pg.base, "seed.sql")
    with open(path, "w") as f:
        f.write(sql + "COMMIT;\n")
    os.chmod(path, 0o644)
    pg.psql(file=path, user=ADMIN)


def generation(pg):
    return int(pg.psql("SELECT value FROM settings WHERE key = 'generation'").stdout)


def decision(at, user, client, mech, cls, outcome, policy=None, tls=1, service="submission",
             qid=None, gen=1):
    return {"at": at, "queue_id": qid, "instance": None, "user": user, "client": client,
            "mech": mech, "mech_class": cls, "tls": tls, "service": service, "sender": None,
            "outcome": outcome, "policy": policy, "report_only": None, "generation": gen}


def usage(host, user, mech, network, cls, first, last, count, outcome, client, tls, service):
    return {"host": host, "user_name": user, "mech": mech, "network": network,
            "mech_class": cls, "first_seen": first, "last_seen": last, "count": count,
            "last_outcome": outcome, "last_client": client, "last_tls": tls,
            "last_service": service}


def heartbeat(program, host, pid, started, last, gen, stopped=0):
    return {"program": program, "host": host, "pid": pid, "started_at": started,
            "last_seen": last, "generation": gen, "stopped": stopped, "requests": pid,
            "blocks": 1}


@pytest.fixture
def fleet(pg):
    """Two hosts: mx1 (a policyd) and mx2 (a milter and a policyd that was
    restarted), their decisions, usage rows, heartbeats and Dovecot reports.
    Returns the time the seed is relative to and the policy generation."""
    now = int(time.time())
    g = generation(pg)
    seed(pg,
         batches=[
             ("mx1", 1, "policyd", [
                 decision(now - 300, ALICE, "192.0.2.10", "PLAIN", "legacy", "block",
                          "block-legacy", qid="Q1A"),
                 decision(now - 200, BOB, "198.51.100.7", "XOAUTH2", "modern", "allow"),
                 decision(now - 100, CAFE, "192.0.2.11", "PLAIN", "legacy", "block",
                          "block-legacy")]),
             ("mx2", 1, "milter", [
                 decision(now - 250, ALICE, "203.0.113.5", "LOGIN", "legacy", "block",
                          "block-legacy"),
                 decision(now - 50, ALICE, "192.0.2.10", "PLAIN", "legacy", "block",
                          "block-legacy", tls=0, service="smtp")])],
         usage=[
             usage("mx1", ALICE, "PLAIN", "192.0.2.0/24", "legacy", now - 300, now - 300, 1,
                   "block", "192.0.2.10", 1, "submission"),
             usage("mx2", ALICE, "PLAIN", "192.0.2.0/24", "legacy", now - 50, now - 50, 4,
                   "block", "192.0.2.10", 0, "smtp"),
             usage("mx2", ALICE, "LOGIN", "203.0.113.0/24", "legacy", now - 250, now - 250, 1,
                   "block", "203.0.113.5", 1, "submission"),
             usage("mx1", BOB, "XOAUTH2", "198.51.100.0/24", "modern", now - 200, now - 200, 1,
                   "allow", "198.51.100.7", 1, "submission"),
             usage("mx1", CAFE, "PLAIN", "192.0.2.0/24", "legacy", now - 100, now - 100, 1,
                   "block", "192.0.2.11", 1, "submission")],
         heartbeats=[
             heartbeat("policyd", "mx1", 100, now - 1000, now - 2, g),
             heartbeat("milter", "mx2", 200, now - 1000, now - 500, g),
             heartbeat("milter", "mx1", 201, now - 400, now - 2, g),
             heartbeat("policyd", "mx2", 300, now - 3000, now - 2000, g),
             heartbeat("policyd", "mx2", 301, now - 1900, now - 2, g)],
         auth=[
             {"program": "policyd", "host": "mx1", "pid": 100, "service": "imap",
              "mech_class": "legacy", "result": "failure", "count": 3},
             {"program": "policyd", "host": "mx2", "pid": 300, "service": "imap",
              "mech_class": "legacy", "result": "success", "count": 7},
             {"program": "policyd", "host": "mx2", "pid": 301, "service": "imap",
              "mech_class": "legacy", "result": "success", "count": 2}])
    return now, g


# ---------------------------------------------------------------- report legacy

def test_report_legacy_sums_the_hosts(pg, fleet):
    now, _ = fleet
    r = ctl_json(pg, "report", "legacy")
    users = [(exact(u["user"]), u["count"], u["host"], u["hosts"]) for u in r["users"]]
    assert users == [(ALICE.encode(), 6, "mx2", ["mx1", "mx2"]),
                     (CAFE, 1, "mx1", ["mx1"])]
    alice = r["users"][0]
    assert (alice["first_seen"], alice["last_seen"]) == (iso(now - 300), iso(now - 50))
    assert alice["mechanisms"] == ["PLAIN", "LOGIN"]
    entries = [(e["mech"], e["network"], e["count"], e["first_seen"], e["last_seen"],
                e["host"], e["hosts"], e["last_service"], e["replayed_client"], e["now"])
               for e in alice["entries"]]
    # the PLAIN rows of mx1 and mx2 are one entry: count summed, first and last
    # widened, the newest use's fields (mx2's: smtp, no TLS)
    assert entries == [
        ("PLAIN", "192.0.2.0/24", 5, iso(now - 300), iso(now - 50), "mx2", ["mx1", "mx2"],
         "smtp", "192.0.2.10", "block"),
        ("LOGIN", "203.0.113.0/24", 1, iso(now - 250), iso(now - 250), "mx2", ["mx2"],
         "submission", "203.0.113.5", "block")]
    # text: the hosts of the user, the host of each entry's newest use
    text = ctl_ok(pg, "report", "legacy")
    assert "non-modern authentication since" in text and ": 2 users\n" in text
    assert "\n  mechanisms PLAIN,LOGIN; networks 192.0.2.0/24,203.0.113.0/24; hosts mx1,mx2\n" \
        in text
    rows = [line.split() for line in text.splitlines() if line.startswith("  mx")]
    assert [(row[0], row[1], row[5]) for row in rows] == [
        ("mx2", "PLAIN", "5"), ("mx2", "LOGIN", "1"), ("mx1", "PLAIN", "1")]
    # --user is asked of the fleet's rows too
    only = ctl_json(pg, "report", "legacy", "--user", "@example.test", "--mech", "LOGIN")
    assert [(u["user"], u["count"]) for u in only["users"]] == [(ALICE, 1)]
    csv = ctl_ok(pg, "report", "legacy", "--format", "csv").splitlines()
    assert csv[0].endswith(",exception_expires,host,hosts")
    assert csv[1].startswith(ALICE + ",6,PLAIN,legacy,192.0.2.0/24,5,")
    assert csv[1].endswith(',mx2,"mx1,mx2"')


# ---------------------------------------------------------------- log

def test_log_names_the_host(pg, fleet):
    now, _ = fleet
    log = ctl_json(pg, "log")
    assert [(d["host"], d["id"], d["daemon"], d["at"], exact(d["user"]), d["outcome"])
            for d in log] == [
        ("mx2", 2, "milter", iso(now - 50), ALICE.encode(), "block"),
        ("mx1", 3, "policyd", iso(now - 100), CAFE, "block"),
        ("mx1", 2, "policyd", iso(now - 200), BOB.encode(), "allow"),
        ("mx2", 1, "milter", iso(now - 250), ALICE.encode(), "block"),
        ("mx1", 1, "policyd", iso(now - 300), ALICE.encode(), "block")]
    assert log[4]["queue_id"] == "Q1A" and log[4]["policy"] == "block-legacy"
    assert log[0]["tls"] is False and log[0]["service"] == "smtp"
    alice = ctl_json(pg, "log", "--user", ALICE)
    assert [(d["host"], d["id"]) for d in alice] == [("mx2", 2), ("mx2", 1), ("mx1", 1)]
    # a user name that is not UTF-8, given as its bytes
    cafe = subprocess.run([CTL, "-d", "/nonexistent", "--store", pg.uri(ADMIN), "--json", "log",
                           "--user", CAFE], capture_output=True, timeout=30)
    assert cafe.returncode == 0, cafe.stderr
    assert [(d["host"], d["id"], exact(d["user"])) for d in json.loads(cafe.stdout)] == [
        ("mx1", 3, CAFE)]
    assert ctl_json(pg, "log", "--limit", "2", "--outcome", "block") == log[0:2:1] and \
        len(log) == 5
    # text: a HOST column
    text = ctl_ok(pg, "log", "--limit", "1").splitlines()
    assert text[0].split() == ["ID", "AT", "HOST", "DAEMON", "USER", "CLIENT", "MECH", "TLS",
                               "OUTCOME", "POLICY"]
    assert text[1].split()[:4] == ["2", iso(now - 50), "mx2", "milter"]
    csv = ctl_ok(pg, "log", "--format", "csv", "--limit", "1").splitlines()
    assert csv[0].startswith("id,host,at,daemon,")
    assert csv[1].startswith("2,mx2,%s,milter," % iso(now - 50))


def test_log_explain_host_and_id(pg, fleet):
    # id 2 is on both hosts: the bare id is refused, HOST:ID is one
    both = ctl(pg, "log", "explain", "2")
    assert both.returncode == 1
    assert "decision 2 is on several hosts (mx1, mx2): name one, HOST:2" in both.stderr
    x = ctl_json(pg, "log", "explain", "mx1:2")
    assert (x["then"]["host"], x["then"]["user"], x["then"]["outcome"]) == ("mx1", BOB, "allow")
    assert x["now"]["outcome"] == "allow"
    three = ctl_ok(pg, "log", "explain", "3")  # only mx1 has a decision 3
    assert three.startswith("decision 3 on mx1 by policyd,")
    assert ctl(pg, "log", "explain", "mx2:").returncode == 2
    assert ctl(pg, "log", "explain", ":2").returncode == 2
    gone = ctl(pg, "log", "explain", "mx2:3")
    assert gone.returncode == 2 and "no decision 3 on mx2 in the log" in gone.stderr


# ---------------------------------------------------------------- stats

def test_stats_counts_the_fleet(pg, fleet):
    now, g = fleet
    s = ctl_json(pg, "stats", "--since", "1h")
    assert s["total"] == 5 and s["legacy_users"] == 2
    assert s["outcomes"] == {"block": 4, "allow": 1, "would-block": 0, "not-authenticated": 0}
    assert s["mechanisms"] == {"PLAIN": {"class": "legacy", "count": 3},
                               "LOGIN": {"class": "legacy", "count": 1},
                               "XOAUTH2": {"class": "modern", "count": 1}}
    assert s["hosts"] == {
        "mx1": {"total": 3, "block": 2, "allow": 1, "would-block": 0, "not-authenticated": 0},
        "mx2": {"total": 2, "block": 2, "allow": 0, "would-block": 0, "not-authenticated": 0}}
    assert s["services"] == {"submission": {"authenticated": 4, "block": 3},
                             "smtp": {"authenticated": 1, "block": 1}}
    # Dovecot's reports: the newest instance of each daemon (pid 301, not 300)
    assert [(a["host"], a["result"], a["count"]) for a in s["auth_results"]] == [
        ("mx1", "failure", 3), ("mx2", "success", 2)]
    # the window cuts by decision time, across hosts
    assert ctl_json(pg, "stats", "--since", iso(now - 260), "--until", iso(now - 60))["hosts"] \
        == {"mx1": {"total": 2, "block": 1, "allow": 1, "would-block": 0,
                    "not-authenticated": 0},
            "mx2": {"total": 1, "block": 1, "allow": 0, "would-block": 0,
                    "not-authenticated": 0}}
    text = ctl_ok(pg, "stats", "--since", "1h")
    assert re.search(r"\nby host: +DECISIONS +BLOCK +ALLOW +WOULD-BLOCK +NOT-AUTHENTICATED\n"
                     r"  mx1 +3 +2 +1 +0 +0\n  mx2 +2 +2 +0 +0 +0\n", text), text
    csv = ctl_ok(pg, "stats", "--since", "1h", "--format", "csv").splitlines()
    assert "host,mx1,,3" in csv and "host,mx2,block,2" in csv


def test_stats_prometheus_host_labels(pg, fleet):
    _, g = fleet
    fams = parse_prometheus(ctl_ok(pg, "stats", "--since", "1h", "--format", "prometheus"))

    def samples(name):
        return {tuple(sorted(k)): v for k, v in fams[name]["samples"].items()}

    outcomes = samples("saslgate_logged_outcomes")
    assert outcomes[(("host", "mx1"), ("outcome", "block"))] == 2
    assert outcomes[(("host", "mx1"), ("outcome", "allow"))] == 1
    assert outcomes[(("host", "mx2"), ("outcome", "block"))] == 2
    assert outcomes[(("host", "mx2"), ("outcome", "allow"))] == 0
    assert len(outcomes) == 8  # every series has a host
    decisions = samples("saslgate_logged_decisions")
    assert decisions == {
        (("class", "legacy"), ("host", "mx1"), ("mech", "PLAIN"), ("outcome", "block")): 2,
        (("class", "modern"), ("host", "mx1"), ("mech", "XOAUTH2"), ("outcome", "allow")): 1,
        (("class", "legacy"), ("host", "mx2"), ("mech", "PLAIN"), ("outcome", "block")): 1,
        (("class", "legacy"), ("host", "mx2"), ("mech", "LOGIN"), ("outcome", "block")): 1}
    up = samples("saslgate_daemon_up")
    assert up == {(("host", "mx1"), ("program", "milter")): 1,
                  (("host", "mx1"), ("program", "policyd")): 1,
                  (("host", "mx2"), ("program", "milter")): 0,
                  (("host", "mx2"), ("program", "policyd")): 1}
    assert samples("saslgate_daemon_requests_total")[
        (("host", "mx2"), ("program", "policyd"))] == 301
    assert samples("saslgate_legacy_users")[()] == 2
    assert samples("saslgate_policy_generation")[()] == g


# ---------------------------------------------------------------- status

def nagios(pg):
    proc = ctl(pg, "status", "--nagios")
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout + proc.stderr
    return proc.returncode, lines[0]


def test_status_lists_every_host(pg, fleet):
    now, g = fleet
    st = ctl_json(pg, "status")
    assert [(d["program"], d["host"], d["pid"], d["state"]) for d in st["daemons"]] == [
        ("milter", "mx1", 201, "running"),
        # stale: mx1's newer milter does not supersede mx2's (per program and host)
        ("milter", "mx2", 200, "stale"),
        ("policyd", "mx1", 100, "running"),
        ("policyd", "mx2", 300, "superseded"),
        ("policyd", "mx2", 301, "running")]
    assert st["state"] == "CRITICAL"
    assert [p["text"] for p in st["problems"]] == [
        "milter pid 200 on mx2: last heartbeat %ds ago" % st["daemons"][1][
            "heartbeat_age"]]
    assert st["store"]["store"].startswith("PostgreSQL database saslgate on 127.0.0.1:")
    assert st["store"]["generation"] == g
    assert st["store"]["policy_db"]["present"] is True  # no "policy.db is missing"
    assert st["store"]["activity_db"]["integrity"] is True
    code, line = nagios(pg)
    assert code == 2, line
    assert re.match(r"SASLGATE CRITICAL - milter pid 200 on mx2: last heartbeat "
                    r"50[0-9]s ago \| daemons=3;;1:;0 ", line), line
    text = ctl_ok(pg, "status")
    assert "\nstore PostgreSQL database saslgate on 127.0.0.1:" in text
    assert "  milter pid 200 on mx2: stale\n" in text
    assert "  policyd pid 300 on mx2: superseded\n" in text
    assert "missing" not in text
    # the milter of mx2 beats again: everything OK
    pg.psql("UPDATE fleet_heartbeats SET last_seen = %d WHERE pid = 200" % int(time.time()),
            user=ADMIN)
    code, line = nagios(pg)
    assert code == 0, line
    assert line.startswith("SASLGATE OK - 4 daemons running, policy generation %d | " % g)


def test_status_on_a_host_of_the_fleet(pg, tmp_path):
    """A host whose daemons run on the PostgreSQL store has policy-cache.db
    and no policy.db: status reads the cache instead of calling policy.db
    missing."""
    d = tmp_path / "mx"
    d.mkdir()
    p = Policyd(d, str(d), extra_args=["--store", pg.uri("saslgate_daemon")], settings=FAST)
    try:
        assert wait_for(lambda: os.path.exists(str(d / "policy-cache.db")), 5)
        assert not os.path.exists(str(d / "policy.db"))
        st = json.loads(ok(d, "--json", "status"))
        assert "policy.db is missing" not in [x["text"] for x in st["problems"]]
        assert st["store"]["policy_db"]["present"] is True
        assert st["store"]["generation"] == generation(pg)
        assert "policy-cache.db" in ok(d, "status")
    finally:
        assert p.stop() == 0


# ---------------------------------------------------------------- report html, prune

def test_report_html_runs(pg, fleet, tmp_path):
    out = tmp_path / "report.html"
    ctl_ok(pg, "report", "html", "-o", str(out))
    html = out.read_text(errors="replace")
    assert html.startswith("<!DOCTYPE html>")
    worklist = html.split('id="worklist"')[1].split("</section>")[0]
    assert ALICE in worklist and BOB not in worklist
    assert "<th>Networks</th><th>Hosts</th><th>Services</th>" in worklist
    alice = worklist.split('data-user="%s"' % ALICE)[1].split("</tr>")[0]
    assert '<td data-label="Hosts">mx1<br>mx2</td>' in alice
    assert 'data-count="6"' in alice
    assert "Generated by saslgatectl 0.1.0 from PostgreSQL database saslgate on 127.0.0.1:" \
        in html


def test_prune_the_fleet(pg, fleet):
    now, g = fleet
    old = now - 100 * 86400
    pg.psql("INSERT INTO fleet_decision_batches VALUES ('mx3', 1, 'policyd', %d, %d, 2, %s); "
            "INSERT INTO fleet_heartbeats (program, host, pid, started_at, last_seen) "
            "VALUES ('saslgate-policyd', 'mx3', 9, %d, %d)" % (
                old, old, lit(batch([decision(old, ALICE, "192.0.2.1", "PLAIN", "legacy",
                                              "block")] * 2)), old, old), user=ADMIN)
    # a bad command changes nothing
    bad = ctl(pg, "prune", "--older-than", "soon")
    assert bad.returncode == 2 and "--older-than" in bad.stderr
    assert pg.psql("SELECT count(*) FROM fleet_decision_batches").stdout.strip() == "3"
    dry = ctl_json(pg, "prune", "--older-than", "30d", "--dry-run")
    assert (dry["decisions"], dry["heartbeats"]) == (2, 1)
    done = ctl_json(pg, "prune", "--older-than", "30d")
    assert (done["decisions"], done["heartbeats"], done["batches"]) == (2, 1, 1)
    assert pg.psql("SELECT count(*) FROM fleet_decision_batches WHERE host = 'mx3'").stdout \
        .strip() == "0"
    assert len(ctl_json(pg, "log")) == 5  # the rest is there


# ---------------------------------------------------------------- no PostgreSQL

def test_without_postgresql(pg):
    uri = "postgresql://%s@127.0.0.1:%d/saslgate" % (ADMIN, free_port())
    label = "PostgreSQL database saslgate on 127.0.0.1:%s as %s" % (uri.split(":")[2]
                                                                     .split("/")[0], ADMIN)
    for args in (["report", "legacy"], ["log"], ["stats"], ["status"], ["report", "html"],
                 ["prune", "--older-than", "30d"]):
        proc = ctl(pg, *args, uri=uri)
        assert proc.returncode == 1, (args, proc)
        lines = proc.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith(
            "saslgatectl: %s: cannot connect to PostgreSQL: " % label), (args, proc.stderr)
        assert proc.stdout == ""
    proc = ctl(pg, "status", "--nagios", uri=uri)
    assert proc.returncode == 3
    assert proc.stdout.startswith("SASLGATE UNKNOWN - %s: cannot connect to PostgreSQL" % label)
    # bad usage stays bad usage
    assert ctl(pg, "log", "--limit", "x").returncode == 2


# ---------------------------------------------------------------- the same answers

def ask_raw(daemon, user, mech, ip, tls, n):
    """Submission n (its own instance) through the policy daemon; user may
    be bytes, sent as they are."""
    attrs = postfix_request(sasl_method=mech, client_address=ip, sasl_username="@USER@",
                            instance="fleet.%d" % n,
                            encryption_protocol="TLSv1.3" if tls else None,
                            encryption_cipher="TLS_AES_256_GCM_SHA384" if tls else None,
                            encryption_keysize="256" if tls else None)
    data = encode(attrs).replace(b"@USER@", as_bytes(user))
    with daemon.client() as c:
        c.send(data)
        return c.read_reply()


def copy_activity(pg, store_dir, host):
    """A host's activity.db into the fleet tables, as the delivery would."""
    db = sqlite3.connect(os.path.join(str(store_dir), "activity.db"))
    db.text_factory = bytes
    try:
        batches = db.execute("SELECT id, daemon, first_at, last_at, n, data "
                             "FROM decision_batches").fetchall()
        rows = db.execute("SELECT user, mech, network, mech_class, first_seen, last_seen, "
                          "count, last_outcome, last_client, last_tls, last_service "
                          "FROM usage").fetchall()
        beats = db.execute("SELECT program, pid, started_at, last_seen, generation, stopped "
                           "FROM heartbeats").fetchall()
    finally:
        db.close()
    sql = "BEGIN;\n" + "".join("DELETE FROM %s;\n" % t for t in FLEET_TABLES)
    sql += insert("fleet_decision_batches", [
        {"host": host, "id": b[0], "daemon": b[1].decode(), "first_at": b[2], "last_at": b[3],
         "n": b[4], "data": b[5]} for b in batches])
    sql += insert("fleet_usage", [
        {"host": host, "user_name": r[0], "mech": r[1].decode(), "network": r[2].decode(),
         "mech_class": r[3].decode(), "first_seen": r[4], "last_seen": r[5], "count": r[6],
         "last_outcome": r[7].decode(), "last_client": r[8] and r[8].decode(),
         "last_tls": r[9], "last_service": r[10] and r[10].decode()} for r in rows])
    sql += insert("fleet_heartbeats", [
        {"program": h[0].decode(), "host": host, "pid": h[1], "started_at": h[2],
         "last_seen": h[3], "generation": h[4], "stopped": h[5]} for h in beats])
    path = os.path.join(pg.base, "copy.sql")
    with open(path, "w") as f:
        f.write(sql + "COMMIT;\n")
    os.chmod(path, 0o644)
    pg.psql(file=path, user=ADMIN)
    return len(batches)


def without(value, keys):
    """value with the fleet's own keys removed, recursively."""
    if isinstance(value, dict):
        return {k: without(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [without(v, keys) for v in value]
    return value


def test_same_answers_as_sqlite(pg, tmp_path):
    store = tmp_path / "store"
    ok(store, "init")
    p = Policyd(tmp_path, str(store), settings=FAST)
    try:
        submissions = [(ALICE, "PLAIN", "192.0.2.10", True), (ALICE, "PLAIN", "192.0.2.20", False),
                       (ALICE, "LOGIN", "203.0.113.5", True), (BOB, "XOAUTH2", "198.51.100.7", True),
                       (CAFE, "PLAIN", "192.0.2.11", False), (CAFE, "PLAIN", "192.0.2.11", True),
                       ("", None, "192.0.2.30", False)]
        for n, (user, mech, ip, tls) in enumerate(submissions):
            ask_raw(p, user, mech or "", ip, tls, n)
        wait_logged(store, len(submissions))
    finally:
        assert p.stop() == 0, p.log_text()
    assert copy_activity(pg, store, "mx1") >= 1
    since, until = iso(int(time.time()) - 3600), iso(int(time.time()) + 1)
    fleet_keys = ("host", "hosts", "generated")
    # the same --since for both (the default, 30 days before now, can fall
    # on either side of a second between the two runs)
    for args in (["report", "legacy", "--since", since],
                 ["report", "legacy", "--since", since, "--user", "@example.test"],
                 ["log"], ["log", "--user", ALICE], ["log", "--outcome", "allow"],
                 ["stats", "--since", since, "--until", until]):
        local = json.loads(ok(store, "--json", *args))
        shared = ctl_json(pg, *args)
        assert without(shared, fleet_keys) == without(local, fleet_keys), args
        assert local  # something was compared
    # the name that is not UTF-8 reads back exactly, on both paths
    local = json.loads(ok(store, "--json", "report", "legacy"))
    shared = ctl_json(pg, "report", "legacy")
    assert sorted(exact(u["user"]) for u in shared["users"]) == \
        sorted(exact(u["user"]) for u in local["users"]) == [ALICE.encode(), CAFE]
    assert [u["hosts"] for u in shared["users"]] == [["mx1"], ["mx1"]]
    # stats: the fleet's breakdown is the one host's totals
    stats = ctl_json(pg, "stats", "--since", since, "--until", until)
    assert stats["hosts"]["mx1"]["total"] == stats["total"] == len(submissions)
    # log explain: the same replay (a bare id: one host has it)
    first = json.loads(ok(store, "--json", "log"))[-1]["id"]
    keys = fleet_keys + ("at",)
    assert without(ctl_json(pg, "log", "explain", str(first)), keys) == \
        without(json.loads(ok(store, "--json", "log", "explain", str(first))), keys)
    # text outputs: the same, but for the fleet's HOST column / hosts
    local_text = ok(store, "stats", "--since", since, "--until", until)
    shared_text = ctl_ok(pg, "stats", "--since", since, "--until", until)
    assert shared_text.startswith(local_text)
    assert shared_text[len(local_text):].startswith("\nby host:")
    assert run(store, "log").stdout.splitlines()[1].split()[0] == \
        ctl_ok(pg, "log").splitlines()[1].split()[0]
