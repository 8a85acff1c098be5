"""saslgate-milter driven by miltertest scenario scripts (tests/milter/*.lua)
against a real policy.db, checking the replies and what activity.db records."""

import os
import shutil
import subprocess

import pytest

from milter_util import (MILTER, Milter, activity_rows, add_exception, create_store,
                         run_lua, wait_for)
from milter_wire import SMFIR_ACCEPT, session

pytestmark = [
    pytest.mark.skipif(not os.path.exists(MILTER), reason="saslgate-milter not built"),
    pytest.mark.skipif(shutil.which("miltertest") is None, reason="miltertest not installed"),
]


@pytest.fixture
def store(tmp_path):
    d = str(tmp_path / "store")
    create_store(d)
    return d


@pytest.fixture
def milter(store):
    m = Milter(store)
    yield m
    status = m.stop()
    assert status == 0, "saslgate-milter exit status %s:\n%s" % (status, m.output())


def lua(script, m, **defines):
    rc, out, err = run_lua(script, m.address, **defines)
    assert rc == 0, "%s failed (rc %d):\n%s\n%s\n--- milter log:\n%s" % (
        script, rc, out, err, m.output())
    assert "ok" in out


def decisions(store_dir, where="1=1", params=()):
    return activity_rows(
        store_dir,
        "SELECT queue_id, user, client, mech, mech_class, service, sender, outcome, policy, "
        "report_only, daemon FROM decisions WHERE " + where + " ORDER BY id", params)


def wait_decisions(store_dir, where, params=(), count=1):
    return wait_for(lambda: (lambda r: r if len(r) >= count else None)(
        decisions(store_dir, where, params)), what="decision rows " + where)


def test_legacy_blocked(store, milter):
    lua("legacy_blocked.lua", milter)
    (row,) = wait_decisions(store, "queue_id = 'LEG001'")
    assert row[1:9] == ("alice@example.test", "192.0.2.10", "PLAIN", "legacy", "submission",
                        "alice@example.test", "block", "block-legacy")
    assert row[10] == "milter"


def test_modern_accepted(store, milter):
    lua("modern_accepted.lua", milter)
    rows = wait_decisions(store, "queue_id IN ('MOD001', 'MOD002')", count=2)
    assert [(r[3], r[4], r[7]) for r in rows] == [
        ("XOAUTH2", "modern", "allow"), ("OAUTHBEARER", "modern", "allow")]


def test_unauthenticated_continues(store, milter):
    lua("unauthenticated.lua", milter)


def test_exception_honoured(store):
    add_exception(store, user="bob@example.test", reason="legacy scanner")
    m = Milter(store)
    try:
        lua("exception.lua", m)
        rows = wait_decisions(store, "queue_id IN ('EXC001', 'EXC002')", count=2)
        assert [(r[1], r[7]) for r in rows] == [
            ("bob@example.test", "allow"), ("alice@example.test", "block")]
    finally:
        assert m.stop() == 0


def test_report_only_accepted_and_recorded(tmp_path):
    store = str(tmp_path / "store")
    create_store(store, policy_state="report-only")
    m = Milter(store)
    try:
        lua("report_only.lua", m)
        (row,) = wait_decisions(store, "queue_id = 'REP001'")
        assert row[7] == "would-block"
        assert row[8] is None or row[8] == ""
        assert "block-legacy" in row[9]
    finally:
        assert m.stop() == 0


def test_two_messages_on_one_connection(store, milter):
    lua("two_messages.lua", milter)
    rows = wait_decisions(store, "queue_id LIKE 'TWO%'", count=3)
    assert [(r[0], r[7]) for r in rows] == [
        ("TWO001", "block"), ("TWO002", "allow"), ("TWO003", "block")]


def test_sendmail_macro_set(store, milter):
    lua("sendmail_macros.lua", milter)
    rows = wait_decisions(store, "queue_id LIKE '5AB1c2SM%'", count=2)
    assert [(r[1], r[2], r[3], r[5], r[7]) for r in rows] == [
        ("dave", "192.0.2.20", "LOGIN", "MSA", "block"),
        ("dave@EXAMPLE.TEST", "192.0.2.20", "GSSAPI", "MSA", "allow")]


def test_postfix_macro_set(store, milter):
    lua("postfix_macros.lua", milter)
    rows = wait_decisions(store, "queue_id LIKE '4QxYzK1abcz%'", count=2)
    assert [(r[2], r[3], r[4], r[5], r[7]) for r in rows] == [
        ("2001:db8::25", "PLAIN", "legacy", "submission", "block"),
        ("2001:db8::25", "OAUTHBEARER", "modern", "submission", "allow")]


def test_check_mode(store, tmp_path):
    p = subprocess.run([MILTER, "-n", "-d", store, "-p", "unix:/tmp/x.sock"],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 0, p.stderr
    assert "socket = unix:/tmp/x.sock" in p.stdout
    assert "on_error = tempfail" in p.stdout
    empty = str(tmp_path / "empty")
    os.makedirs(empty)
    p = subprocess.run([MILTER, "-n", "-d", empty, "-p", "unix:/tmp/x.sock"],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 1
    assert "policy.db" in p.stderr


def test_bad_settings_refused(store):
    p = subprocess.run([MILTER, "-n", "-d", store, "-p", "unix:/tmp/x.sock",
                        "-o", "on_error=explode"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 1
    assert "on_error" in p.stderr
    p = subprocess.run([MILTER, "-f", "-d", store], capture_output=True, text=True,
                       timeout=10)
    assert p.returncode == 2
    assert "socket" in p.stderr
    p = subprocess.run([MILTER, "-f", "-d", store, "-p", "tcp:25"], capture_output=True,
                       text=True, timeout=10)
    assert p.returncode == 2
    assert "socket" in p.stderr


def test_socket_mode_and_stale_socket(store):
    m = Milter(store, extra_args=["-o", "socket_mode=0640"])
    try:
        assert os.stat(m.path).st_mode & 0o7777 == 0o640
    finally:
        m.proc.kill()  # leaves the socket behind, as a crash would (a clean stop removes it)
        m.proc.wait()
    assert os.path.exists(m.path)
    # A new instance on the same path removes the stale socket and serves.
    m2 = Milter(store, path=m.path)
    try:
        cmd, _ = session(m2.address, {"{auth_type}": "XOAUTH2", "{auth_authen}": "a"})
        assert cmd == SMFIR_ACCEPT
        assert os.stat(m.path).st_mode & 0o7777 == 0o666  # the helper's -o socket_mode
    finally:
        assert m2.stop() == 0
        m.stop()


def test_sighup_stops_cleanly(store):
    import signal
    m = Milter(store)
    assert m.stop(signal.SIGHUP, remove_dir=False) == 0
    assert not os.path.exists(m.path)
    os.rmdir(m.sockdir)
    # The final heartbeat marks the daemon stopped.
    rows = activity_rows(store, "SELECT stopped FROM heartbeats WHERE program = 'milter'")
    assert rows and rows[-1][0] == 1


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT", "SIGHUP"])
def test_stop_signal_is_acted_on_at_once(store, sig):
    """libmilter's accept loop polls for up to 5 s before it looks at its stop
    flag; the milter interrupts that poll, so no signal waits for it."""
    import signal
    import time
    m = Milter(store)
    time.sleep(0.5)  # the accept loop is now inside a poll of up to 5 s
    started = time.monotonic()
    m.proc.send_signal(getattr(signal, sig))
    try:
        rc = m.proc.wait(15)
    finally:
        m.stop()
    assert rc == 0, m.output()
    assert time.monotonic() - started < 2.5, m.output()
    assert not os.path.exists(m.path)
    assert "stopping on signal %d" % getattr(signal, sig) in m.output()
    rows = activity_rows(store, "SELECT stopped FROM heartbeats WHERE program = 'milter'")
    assert rows and rows[-1][0] == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop privileges")
def test_privileges_dropped_after_binding():
    import grp
    import pwd
    import tempfile
    nobody = pwd.getpwnam("nobody")
    top = tempfile.mkdtemp(prefix="sgpriv", dir="/tmp")  # pytest's tmp_path is 0700
    os.chmod(top, 0o755)
    store = os.path.join(top, "store")
    create_store(store)
    for root, dirs, files in os.walk(store):
        for name in dirs + files:
            os.chown(os.path.join(root, name), nobody.pw_uid, nobody.pw_gid)
    os.chown(store, nobody.pw_uid, nobody.pw_gid)
    m = Milter(store, extra_args=["-u", "nobody", "-o", "socket_group=%s" % grp.getgrgid(
        nobody.pw_gid).gr_name, "-o", "socket_mode=0660"])
    try:
        st = os.stat(m.path)
        assert st.st_uid == 0 and st.st_gid == nobody.pw_gid
        assert st.st_mode & 0o7777 == 0o660
        with open("/proc/%d/status" % m.proc.pid) as f:
            uids = [line.split()[1:] for line in f if line.startswith("Uid:")][0]
        assert set(uids) == {str(nobody.pw_uid)}
        cmd, _ = session(m.address, {"{auth_type}": "XOAUTH2", "{auth_authen}": "a"})
        assert cmd == SMFIR_ACCEPT
        wait_decisions(store, "mech = 'XOAUTH2'")
    finally:
        assert m.stop() == 0
        shutil.rmtree(top, ignore_errors=True)


def test_rebuild_counted_in_heartbeat(store):
    """The milter's heartbeats carry the rebuild figures too (they come from
    the gate both daemons share); before, only policyd reported them."""
    m = Milter(store)
    try:
        lua("legacy_blocked.lua", m)
        add_exception(store, user="someone-else@example.test")  # the next MAIL rebuilds
        lua("legacy_blocked.lua", m)

        def rebuilds():
            rows = activity_rows(store, "SELECT rebuilds, last_rebuild_us FROM heartbeats "
                                 "WHERE program = 'milter' AND pid = ?", (m.proc.pid,))
            return rows and rows[0][0] >= 1 and rows[0]
        row = wait_for(rebuilds, timeout=8, what="a heartbeat with a rebuild")
        assert row[1] > 0, row
    finally:
        assert m.stop() == 0
