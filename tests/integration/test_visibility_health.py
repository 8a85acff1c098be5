"""saslgatectl status --nagios against real daemons (fresh, killed, lagging,
stopped), prune while a daemon writes, log explain after a policy change, and
the usage errors of the visibility commands."""

import json
import os
import signal
import sqlite3
import threading
import time

import pytest

from policyd_util import POLICYD
from visibility_util import (FAST, Policyd, activity, ask, js, nagios, ok, run, stop_hard,
                             wait_for, wait_heartbeat, wait_logged)

pytestmark = pytest.mark.skipif(not (os.access(POLICYD, os.X_OK)), reason="not built")


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "store"
    ok(path, "init")
    return path


@pytest.fixture
def daemon(tmp_path, store):
    d = Policyd(tmp_path, store, settings=FAST)
    wait_heartbeat(store, d.pid)
    yield d
    if d.proc.poll() is None:
        d.proc.send_signal(signal.SIGCONT)
        d.stop()


def test_nagios_ok_then_critical_when_killed(store, daemon):
    state, text, perf = nagios(store, "--stale", "2")
    assert state == "OK", text
    assert "1 daemon running" in text and perf["daemons"] == 1
    assert perf["generation_lag"] == 0 and perf["dropped"] == 0
    stop_hard(daemon)
    deadline = time.monotonic() + 8
    while True:
        state, text, perf = nagios(store, "--stale", "2")
        if state != "OK" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert state == "CRITICAL", text
    assert "policyd pid %d" % daemon.pid in text and "last heartbeat" in text
    assert perf["daemons"] == 0
    # the same heartbeat is fine again with a generous threshold... but not running
    state, _, _ = nagios(store, "--stale", "3600")
    assert state == "OK"


def test_nagios_warning_when_generation_lags(store, daemon):
    # A stopped process cannot pick the change up: its heartbeat keeps the old
    # generation, deterministically.
    daemon.signal(signal.SIGSTOP)
    try:
        ok(store, "policy", "set", "block-legacy", "--state", "report-only")
        state, text, perf = nagios(store, "--stale", "3600")
        assert state == "WARNING", text
        assert "runs policy generation 1, the store has 2" in text
        assert perf["generation_lag"] == 1
        state, text, _ = nagios(store, "--stale", "3600", "--lag-warning", "2")
        assert state == "OK", text
    finally:
        daemon.signal(signal.SIGCONT)
    # Without traffic, the next heartbeat picks the change up.
    got = wait_for(lambda: nagios(store)[0] == "OK", 10, 0.2)
    assert got


def test_nagios_stopped_daemons_and_restart(tmp_path, store):
    first = Policyd(tmp_path, store, settings=FAST)
    wait_heartbeat(store, first.pid)
    assert first.stop() == 0
    wait_heartbeat(store, first.pid, lambda d: d["stopped"])
    state, text, _ = nagios(store)
    assert state == "CRITICAL" and "no running daemon (all stopped)" in text
    assert js(store, "status")["daemons"][0]["state"] == "stopped"
    second = Policyd(tmp_path, store, settings=FAST)
    try:
        wait_heartbeat(store, second.pid)
        state, text, _ = nagios(store, "--stale", "2")
        assert state == "OK", text
        states = {d["pid"]: d["state"] for d in js(store, "status")["daemons"]}
        assert states == {first.pid: "stopped", second.pid: "running"}
    finally:
        second.stop()


def test_nagios_crashed_daemon_superseded_by_restart(tmp_path, store):
    first = Policyd(tmp_path, store, settings=FAST)
    wait_heartbeat(store, first.pid)
    stop_hard(first)
    time.sleep(1.1)  # the replacement starts after the last beat of the first
    second = Policyd(tmp_path, store, settings=FAST)
    try:
        wait_heartbeat(store, second.pid)
        state, text, _ = nagios(store, "--stale", "1")
        assert state == "OK", text
        states = {d["pid"]: d["state"] for d in js(store, "status", "--stale", "1")["daemons"]}
        assert states[first.pid] == "superseded"
    finally:
        second.stop()


def test_nagios_degraded_and_dropped_from_heartbeats(store, daemon):
    """Degradation and dropped records cannot be provoked on demand in a healthy
    daemon; a second heartbeat row as a daemon on another host would write it
    exercises the rules."""
    now = int(time.time())
    activity(store, "INSERT INTO heartbeats (program, host, pid, started_at, last_seen, "
             "generation, degraded, degraded_reason, dropped) VALUES "
             "('milter', 'other-host', 4242, ?, ?, 1, 0, NULL, 3)", (now, now))
    state, text, perf = nagios(store)
    assert state == "WARNING" and "milter pid 4242 on other-host dropped 3" in text
    assert perf["dropped"] == 3
    assert nagios(store, "--dropped-warning", "4")[0] == "OK"
    activity(store, "UPDATE heartbeats SET degraded = 1, degraded_reason = 'policy.db: disk "
             "I/O error' WHERE pid = 4242")
    state, text, _ = nagios(store)
    assert state == "CRITICAL" and "degraded: policy.db: disk I/O error" in text


def test_status_without_activity(store):
    state, text, _ = nagios(store)
    assert state == "CRITICAL" and "no daemon has written a heartbeat" in text
    proc = run(store, "log")
    assert proc.returncode == 1 and "no daemon has recorded activity" in proc.stderr
    out = ok(store, "prune")
    assert "nothing to prune" in out
    assert not os.path.exists(os.path.join(str(store), "activity.db"))


def test_log_explain_after_policy_change(store, daemon):
    assert ask(daemon, "erin@example.com", "LOGIN", "192.0.2.44").startswith(b"action=550")
    wait_logged(store, 1)
    (row,) = js(store, "log")
    ok(store, "exception", "add", "--user", "erin@example.com", "--permanent", "--reason",
       "printer")
    out = js(store, "log", "explain", row["id"])
    assert out["then"]["outcome"] == "block" and out["then"]["policy"] == "block-legacy"
    assert out["now"]["outcome"] == "allow" and out["now"]["policy"] is None
    assert out["changed"] is True
    assert out["now"]["policies"][0]["status"] == "excepted"
    assert out["now"]["policies"][0]["exception"] == 1
    assert out["now"]["generation"] == out["then"]["generation"] + 1
    text = ok(store, "log", "explain", row["id"])
    assert "CHANGED" in text and "excepted by exception #1" in text
    rep = js(store, "report", "legacy")
    assert rep["users"][0]["covered"] == "all"
    assert rep["users"][0]["entries"][0]["permanent"] is True


def test_prune_while_daemon_writes(store, daemon):
    old = int(time.time()) - 200 * 86400
    n_old = 12000
    # Old history, as a daemon would have written it months ago.
    db = sqlite3.connect(os.path.join(str(store), "activity.db"), timeout=10)
    with db:
        db.executemany("INSERT INTO decisions (at, daemon, user, client, mech, mech_class, "
                       "outcome, policy) VALUES (?, 'policyd', 'old@example.com', "
                       "'192.0.2.1', 'PLAIN', 'legacy', 'block', 'block-legacy')",
                       [(old + i,) for i in range(n_old)])
        db.execute("INSERT INTO usage (user, mech, network, mech_class, first_seen, "
                   "last_seen, count, last_outcome) VALUES ('old@example.com', 'PLAIN', "
                   "'192.0.2.0/24', 'legacy', ?, ?, ?, 'block')", (old, old + n_old, n_old))
    db.close()
    dry = js(store, "prune", "--dry-run")
    assert dry["retention_from"] == "activity_retention_days"
    assert dry["older_than_seconds"] == 90 * 86400 and dry["decisions"] == n_old

    sent = []
    errors = []

    def writer():
        try:
            with daemon.client() as c:
                for i in range(400):
                    reply = c.ask(sasl_method="PLAIN", sasl_username="new%d@example.com" % i,
                                  client_address="198.51.100.%d" % (i % 250 + 1))
                    assert reply.startswith(b"action=550"), reply
                    sent.append(i)
        except Exception as e:  # reported below
            errors.append(e)

    t = threading.Thread(target=writer)
    t.start()
    pruned = js(store, "prune", "--batch", "500")
    t.join(30)
    assert not errors, errors
    assert pruned["decisions"] == n_old and pruned["batches"] >= n_old // 500
    wait_logged(store, len(sent))
    rows = activity(store, "SELECT user, count(*) FROM decisions GROUP BY user")
    assert all(n == 1 for _, n in rows), "duplicated rows"
    assert {u for u, _ in rows} == {"new%d@example.com" % i for i in range(400)}
    assert activity(store, "SELECT first_seen, last_seen, count FROM usage "
                    "WHERE user = 'old@example.com'") == [(old, old + n_old, n_old)]
    log = daemon.log_text()
    for needle in ("locked", "busy", "cannot record", "lost"):
        assert needle not in log, log
    st = js(store, "status")
    assert st["daemons"][0]["counters"]["dropped"] == 0


def test_prune_retention_setting(store, daemon):
    ok(store, "settings", "set", "activity_retention_days", "30")
    dry = js(store, "prune", "--dry-run")
    assert dry["older_than_seconds"] == 30 * 86400
    out = js(store, "prune", "--older-than", "2w")
    assert out["older_than_seconds"] == 14 * 86400 and out["retention_from"] == "--older-than"


@pytest.mark.parametrize("args,field,code", [
    (["log", "--outcome", "rejected"], "--outcome", 2),
    (["log", "--limit", "-1"], "--limit", 2),
    (["log", "--since", "yesterday-ish"], "--since", 2),
    (["log", "--policy", "bad name"], "--policy", 2),
    (["log", "--until", "2000-01-01", "--since", "2001-01-01"], "--until", 2),
    (["log", "explain", "abc"], "ID", 2),
    (["log", "explain"], "missing argument", 2),
    (["stats", "--format", "xml"], "--format", 2),
    (["stats", "--since"], "needs a value", 2),
    (["report", "legacy", "--class", "modern"], "--class", 2),
    (["report", "legacy", "--mech", "NOT A MECH"], "--mech", 2),
    (["report", "legacy", "--user", "a@@b"], "--user", 2),
    (["report", "legacy", "--format", "prometheus"], "--format", 2),
    (["report", "bogus"], "unknown command", 2),
    (["status", "--stale", "soon"], "--stale", 2),
    (["status", "--integrity", "some"], "--integrity", 2),
    (["status", "--nagios", "--stale", "soon"], "--stale", 3),
    (["prune", "--older-than", "0d"], "--older-than", 2),
    (["prune", "--batch", "0"], "--batch", 2),
    (["prune", "extra"], "unexpected argument", 2),
])
def test_usage_errors(store, args, field, code):
    proc = run(store, *args)
    assert proc.returncode == code, proc.stderr
    assert field in proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize("args", [["report", "legacy"], ["log"], ["log", "explain"],
                                  ["stats"], ["status"], ["prune"]])
def test_help(store, args):
    for flag in ("-h", "--help"):
        proc = run(store, *args, flag)
        assert proc.returncode == 0 and proc.stdout.startswith("usage:"), proc.stdout


def test_log_explain_unknown_id(store, daemon):
    ask(daemon, "x@example.com", "PLAIN", "192.0.2.1")
    wait_logged(store, 1)
    proc = run(store, "log", "explain", "999")
    assert proc.returncode == 2 and "no decision 999" in proc.stderr
    assert json.loads(ok(store, "--json", "log"))[0]["id"] == 1


def test_policyd_and_milter_both_visible(store, daemon):
    from milter_util import MILTER, Milter
    from milter_wire import SMFIR_REPLYCODE, session
    if not os.access(MILTER, os.X_OK):
        pytest.skip("saslgate-milter not built")
    milter = Milter(str(store))
    try:
        cmd, _ = session(milter.address, {"i": "Q1", "{auth_type}": "LOGIN",
                                          "{auth_authen}": "mia@example.com"},
                         addr="198.51.100.20")
        assert cmd == SMFIR_REPLYCODE
        assert ask(daemon, "mia@example.com", "PLAIN", "198.51.100.21").startswith(b"action=550")
        wait_logged(store, 2)
        rows = js(store, "log")
        assert sorted((r["daemon"], r["mech"], r["outcome"]) for r in rows) == [
            ("milter", "LOGIN", "block"), ("policyd", "PLAIN", "block")]
        (user,) = js(store, "report", "legacy")["users"]
        assert user["user"] == "mia@example.com" and user["count"] == 2
        assert user["networks"] == ["198.51.100.0/24"]
        assert sorted(user["mechanisms"]) == ["LOGIN", "PLAIN"]
        assert js(store, "stats")["outcomes"]["block"] == 2
        wait_heartbeat(store, milter.proc.pid)
        state, text, perf = nagios(store, "--stale", "5")
        assert state == "OK" and perf["daemons"] == 2, text
    finally:
        milter.stop()
