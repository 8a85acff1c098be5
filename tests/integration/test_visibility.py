"""saslgatectl report legacy, log, log explain, stats and status against a real
saslgate-policyd that has decided a known mix of submissions: every command
must show exactly those submissions, in text, JSON, CSV and Prometheus."""

import csv
import io
import os
import subprocess
import time

import pytest

from policyd_util import CTL, POLICYD
from visibility_util import (FAST, Policyd, ask, js, ok, parse_prometheus, sample,
                             wait_heartbeat, wait_logged)

pytestmark = pytest.mark.skipif(not (os.access(POLICYD, os.X_OK)), reason="not built")

BLOCK = b"action=550 5.7.9"
DUNNO = b"action=DUNNO\n\n"

# (user, mechanism, client address, expected outcome)
MIX = [
    ("alice@example.com", "PLAIN", "192.0.2.10", "block"),
    ("alice@example.com", "PLAIN", "192.0.2.10", "block"),
    ("alice@example.com", "PLAIN", "192.0.2.11", "block"),
    ("alice@example.com", "LOGIN", "198.51.100.7", "block"),
    ("bob@example.com", "XOAUTH2", "192.0.2.5", "allow"),
    ("bob@example.com", "XOAUTH2", "192.0.2.6", "allow"),
    ("carol@example.com", "SCRAM-SHA-256", "2001:db8::5", "would-block"),
    ("dave@example.net", "PLAIN", "203.0.113.9", "allow"),
    ("", "", "192.0.2.99", "not-authenticated"),
]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("visibility")
    store = tmp / "store"
    ok(store, "init")
    ok(store, "policy", "add", "watch-scram", "--state", "report-only", "--mech", "password")
    ok(store, "exception", "add", "--user", "dave@example.net", "--expires", "3d",
       "--reason", "migrating the scanner")
    daemon = Policyd(tmp, store, settings=FAST)
    start = int(time.time())
    for user, mech, ip, outcome in MIX:
        reply = ask(daemon, user, mech, ip)
        assert reply.startswith(BLOCK) if outcome == "block" else reply == DUNNO, reply
    end = int(time.time()) + 1
    wait_logged(store, len(MIX))
    wait_heartbeat(store, daemon.pid, lambda d: d["counters"]["requests"] == len(MIX))
    yield {"store": store, "daemon": daemon, "start": start, "end": end}
    daemon.stop()


def within(site, iso):
    t = time.mktime(time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    return site["start"] <= t <= site["end"]


# ---------------------------------------------------------------- log

def test_log_json_shows_every_submission_newest_first(site):
    rows = js(site["store"], "log", "--limit", "0")
    assert len(rows) == len(MIX)
    assert [r["id"] for r in rows] == sorted((r["id"] for r in rows), reverse=True)
    got = sorted((r["user"] or "", r["mech"] or "", r["client"], r["outcome"]) for r in rows)
    assert got == sorted(MIX)
    for r in rows:
        assert r["daemon"] == "policyd" and within(site, r["at"])
        assert r["generation"] == 3
    carol = [r for r in rows if r["user"] == "carol@example.com"][0]
    assert carol["report_only"] == ["watch-scram"] and carol["policy"] is None
    assert carol["mech_class"] == "password" and carol["tls"] is True
    alice = [r for r in rows if r["user"] == "alice@example.com"]
    assert {r["policy"] for r in alice} == {"block-legacy"}


@pytest.mark.parametrize("args,expect", [
    (["--user", "alice@example.com"], 4),
    (["--outcome", "block"], 4),
    (["--outcome", "allow"], 3),
    (["--outcome", "would-block"], 1),
    (["--outcome", "not-authenticated"], 1),
    (["--policy", "block-legacy"], 4),
    (["--policy", "watch-scram"], 1),
    (["--user", "bob@example.com", "--outcome", "block"], 0),
    (["--limit", "2"], 2),
    (["--until", "2000-01-01"], 0),
    (["--since", "1h"], len(MIX)),
])
def test_log_filters(site, args, expect):
    rows = js(site["store"], "log", *args)
    assert len(rows) == expect
    if args[0] == "--limit":
        newest = js(site["store"], "log", "--limit", "0")[:2]
        assert [r["id"] for r in rows] == [r["id"] for r in newest]


def test_log_text_and_csv(site):
    text = ok(site["store"], "log").splitlines()
    assert text[0].split()[:3] == ["ID", "AT", "DAEMON"]
    assert len(text) == 1 + len(MIX)
    assert sum("block-legacy" in line for line in text) == 4
    assert any("[report-only: watch-scram]" in line for line in text)
    rows = list(csv.DictReader(io.StringIO(ok(site["store"], "log", "--format", "csv"))))
    assert len(rows) == len(MIX)
    assert sorted(r["outcome"] for r in rows) == sorted(m[3] for m in MIX)
    assert {r["client"] for r in rows} == {m[2] for m in MIX}


def test_log_explain_unchanged(site):
    rows = js(site["store"], "log", "--user", "carol@example.com")
    out = js(site["store"], "log", "explain", rows[0]["id"])
    assert out["then"]["outcome"] == "would-block"
    assert out["now"]["outcome"] == "would-block"
    assert out["now"]["report_only"] == ["watch-scram"]
    assert out["changed"] is False
    text = ok(site["store"], "log", "explain", rows[0]["id"])
    assert "unchanged" in text and "THEN" in text and "NOW" in text


# ---------------------------------------------------------------- report legacy

def test_report_legacy_json(site):
    rep = js(site["store"], "report", "legacy")
    users = {u["user"]: u for u in rep["users"]}
    assert set(users) == {"alice@example.com", "carol@example.com", "dave@example.net"}
    assert rep["users"][0]["user"] == "alice@example.com"  # most active first
    alice = users["alice@example.com"]
    assert alice["count"] == 4 and alice["last_outcome"] == "block"
    assert sorted(alice["mechanisms"]) == ["LOGIN", "PLAIN"]
    assert sorted(alice["networks"]) == ["192.0.2.0/24", "198.51.100.0/24"]
    assert alice["covered"] == "none"
    entries = {(e["mech"], e["network"]): e for e in alice["entries"]}
    plain = entries[("PLAIN", "192.0.2.0/24")]
    assert plain["count"] == 3 and plain["class"] == "legacy" and plain["now"] == "block"
    assert plain["replayed_from_log"] and plain["replayed_client"] in ("192.0.2.10",
                                                                      "192.0.2.11")
    assert entries[("LOGIN", "198.51.100.0/24")]["count"] == 1
    for u in users.values():
        assert within(site, u["first_seen"]) and within(site, u["last_seen"])
    carol = users["carol@example.com"]
    assert carol["count"] == 1 and carol["last_outcome"] == "would-block"
    assert carol["entries"][0]["class"] == "password"
    assert carol["networks"] == ["2001:db8::/64"]
    dave = users["dave@example.net"]
    assert dave["covered"] == "all" and dave["last_outcome"] == "allow"
    entry = dave["entries"][0]
    assert entry["covered"] and entry["exceptions"] == [1] and not entry["permanent"]
    expires = time.mktime(time.strptime(entry["expires"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert abs(expires - (site["start"] + 3 * 86400)) < 120


@pytest.mark.parametrize("args,users", [
    (["--class", "password"], ["carol@example.com"]),
    (["--class", "legacy"], ["alice@example.com", "dave@example.net"]),
    (["--mech", "login"], ["alice@example.com"]),
    (["--user", "@example.com"], ["alice@example.com", "carol@example.com"]),
    (["--user", "dave@*"], ["dave@example.net"]),
    (["--since", "2099-01-01"], []),
])
def test_report_legacy_filters(site, args, users):
    rep = js(site["store"], "report", "legacy", *args)
    assert sorted(u["user"] for u in rep["users"]) == users
    if args[0] == "--mech":
        assert [e["mech"] for e in rep["users"][0]["entries"]] == ["LOGIN"]


def test_report_legacy_text_and_csv(site):
    text = ok(site["store"], "report", "legacy")
    assert "3 users" in text.splitlines()[0]
    assert "alice@example.com: 4 submissions" in text
    assert "bob@example.com" not in text
    assert "#1 until" in text
    rows = list(csv.DictReader(io.StringIO(ok(site["store"], "report", "legacy", "--format",
                                              "csv"))))
    assert [(r["user"], r["mech"], r["count"]) for r in rows][:2] in (
        [("alice@example.com", "PLAIN", "3"), ("alice@example.com", "LOGIN", "1")],)
    dave = [r for r in rows if r["user"] == "dave@example.net"][0]
    assert dave["covered"] == "yes" and dave["exceptions"] == "1" and dave["now"] == "allow"
    assert len(rows) == 4


# ---------------------------------------------------------------- stats

def test_stats_json(site):
    st = js(site["store"], "stats")
    assert st["total"] == len(MIX)
    assert st["outcomes"] == {"block": 4, "allow": 3, "would-block": 1, "not-authenticated": 1}
    assert st["policies"] == {"block-legacy": {"block": 4, "would-block": 0},
                              "watch-scram": {"block": 0, "would-block": 1}}
    assert st["mechanisms"] == {
        "PLAIN": {"class": "legacy", "count": 4}, "LOGIN": {"class": "legacy", "count": 1},
        "XOAUTH2": {"class": "modern", "count": 2},
        "SCRAM-SHA-256": {"class": "password", "count": 1}}
    assert st["classes"] == {"legacy": 5, "password": 1, "modern": 2}
    assert st["legacy_users"] == 3
    assert js(site["store"], "stats", "--until", "2000-01-01", "--since",
              "1999-01-01")["total"] == 0


def test_stats_text_and_csv(site):
    text = ok(site["store"], "stats")
    assert ": %d\n" % len(MIX) in text.splitlines(True)[0]
    rows = list(csv.DictReader(io.StringIO(ok(site["store"], "stats", "--format", "csv"))))
    got = {(r["dimension"], r["value"], r["outcome"]): int(r["count"]) for r in rows}
    assert got[("total", "", "")] == len(MIX)
    assert got[("outcome", "block", "block")] == 4
    assert got[("policy", "watch-scram", "would-block")] == 1
    assert got[("mechanism", "PLAIN", "")] == 4
    assert got[("class", "modern", "")] == 2


def test_stats_prometheus(site):
    text = ok(site["store"], "stats", "--format", "prometheus")
    fam = parse_prometheus(text)
    for o, n in {"block": 4, "allow": 3, "would-block": 1, "not-authenticated": 1}.items():
        assert sample(fam, "saslgate_logged_outcomes", outcome=o) == n
    assert sample(fam, "saslgate_logged_decisions", outcome="block", **{"class": "legacy"},
                  mech="PLAIN") == 3
    assert sample(fam, "saslgate_logged_decisions", outcome="allow", **{"class": "legacy"},
                  mech="PLAIN") == 1
    assert sample(fam, "saslgate_logged_decisions", outcome="allow", **{"class": "modern"},
                  mech="XOAUTH2") == 2
    assert sample(fam, "saslgate_logged_policy_hits", policy="watch-scram",
                  outcome="would-block") == 1
    assert sample(fam, "saslgate_legacy_users") == 3
    host = os.uname().nodename
    assert sample(fam, "saslgate_daemon_up", program="policyd", host=host) == 1
    assert sample(fam, "saslgate_daemon_degraded", program="policyd", host=host) == 0
    assert sample(fam, "saslgate_daemon_requests_total", program="policyd",
                  host=host) == len(MIX)
    assert sample(fam, "saslgate_daemon_decisions_total", program="policyd", host=host,
                  outcome="block") == 4
    assert fam["saslgate_daemon_decisions_total"]["type"] == "counter"
    assert fam["saslgate_daemon_up"]["type"] == "gauge"
    assert sample(fam, "saslgate_exceptions_expiring_7d") == 1
    assert sample(fam, "saslgate_exceptions_active") == 1
    assert sample(fam, "saslgate_policy_generation") == 3
    # no per-user labels
    for f in fam.values():
        for key in f["samples"]:
            for name, value in key:
                assert name != "user" and "@" not in value


def test_prometheus_parser_is_strict():
    good = "# TYPE a counter\na{x=\"1\"} 2\n"
    assert parse_prometheus(good)["a"]["samples"][frozenset({("x", "1")})] == 2
    for bad in ["a 1\n",                                   # no TYPE
                "# TYPE a gauge\na{x=1} 1\n",              # unquoted value
                "# TYPE a gauge\na{x=\"\\q\"} 1\n",        # bad escape
                "# TYPE a gauge\na one\n",                 # not a float
                "# TYPE a gauge\na 1\na 2\n",              # duplicate series
                "# TYPE a counter\na -1\n",                # negative counter
                "# TYPE 1a gauge\n1a 1\n",                 # bad name
                "# TYPE a gauge\n# TYPE b gauge\na 1\n",   # outside its block
                "# TYPE a gauge\na 1"]:                    # no final newline
        with pytest.raises((AssertionError, ValueError)):
            parse_prometheus(bad)


# ---------------------------------------------------------------- status

def test_status_json_and_text(site):
    st = js(site["store"], "status")
    assert st["state"] == "OK" and st["problems"] == []
    (d,) = [d for d in st["daemons"] if d["pid"] == site["daemon"].pid]
    assert d["program"] == "policyd" and d["state"] == "running"
    assert d["host"] == os.uname().nodename
    assert d["generation"] == 3 and d["generation_lag"] == 0
    assert d["counters"] == {"requests": 9, "blocks": 4, "allows": 3, "would_blocks": 1,
                             "not_authenticated": 1, "errors": 0, "dropped": 0,
                             "rebuilds": d["counters"]["rebuilds"],
                             "last_rebuild_us": d["counters"]["last_rebuild_us"]}
    assert d["degraded"] is False and d["stopped"] is False
    store = st["store"]
    assert store["generation"] == 3 and store["exceptions_active"] == 1
    assert store["exceptions_expiring_7d"] == 1 and store["activity_retention_days"] == 90
    for db in ("policy_db", "activity_db"):
        assert store[db]["schema_version"] == store[db]["schema_version_expected"]
        assert store[db]["integrity"] is True and store[db]["size"] > 0
    text = ok(site["store"], "status")
    assert text.startswith("state: OK")
    assert "policyd pid %d" % site["daemon"].pid in text
    assert "requests         9: block 4, allow 3, would-block 1" in text


# ---------------------------------------------------------------- contrib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def contrib_env():
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(os.path.abspath(CTL)) + os.pathsep + env.get("PATH", "")
    return env


def test_contrib_check_saslgate(site):
    check = os.path.join(ROOT, "contrib", "nagios", "check_saslgate")
    proc = subprocess.run([check, "-d", str(site["store"]), "-s", "30"], capture_output=True,
                          text=True, env=contrib_env(), timeout=30)
    assert proc.returncode == 0 and proc.stdout.startswith("SASLGATE OK - "), proc.stdout
    proc = subprocess.run([check, "-x"], capture_output=True, text=True, env=contrib_env(),
                          timeout=30)
    assert proc.returncode == 3 and proc.stdout.startswith("SASLGATE UNKNOWN")


def test_contrib_prometheus_textfile(site, tmp_path):
    script = os.path.join(ROOT, "contrib", "prometheus", "saslgate-textfile")
    subprocess.run([script, str(tmp_path), str(site["store"]), "1d"], check=True,
                   env=contrib_env(), timeout=30)
    assert os.listdir(str(tmp_path)) == ["saslgate.prom"]
    with open(str(tmp_path / "saslgate.prom")) as f:
        fam = parse_prometheus(f.read())
    assert sample(fam, "saslgate_window_seconds") == 86400
    assert sample(fam, "saslgate_logged_outcomes", outcome="block") == 4
