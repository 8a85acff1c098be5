"""saslgate-policyd's http: endpoints: Dovecot's auth policy protocol on a
real socket with a real store. What Dovecot sends is in DESIGN.md ("Dovecot
auth policy"); tests/e2e has the same with a real Dovecot."""

import json
import os
import socket
import subprocess
import time

import pytest

from ctl_util import js, ok, run
from policyd_util import (POLICYD, Policyd, activity_rows, add_exception, init_store,
                          set_policy_state, wait_for)

pytestmark = pytest.mark.skipif(not os.access(POLICYD, os.X_OK),
                                reason="saslgate-policyd is not built")

REFUSAL = ("Authentication mechanism PLAIN is not allowed; "
           "use OAuth2 (XOAUTH2/OAUTHBEARER)")
GO_ON = {"status": 0, "msg": ""}


@pytest.fixture
def store(tmp_path):
    return init_store(tmp_path / "store")


@pytest.fixture
def daemon(tmp_path, store):
    d = Policyd(tmp_path, store, http=True, settings={"heartbeat_interval": "1s",
                                                      "activity_flush_ms": "10"})
    yield d
    d.kill()


def raw(port, data, timeout=5.0):
    """Sends bytes on a fresh connection; returns everything read until the
    server closes it (or the timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except socket.timeout:
            pass
        return out


def decision_rows(store_dir, where="1"):
    return activity_rows(store_dir, "SELECT user, mech, service, instance, outcome, policy, "
                         "report_only, tls FROM decisions WHERE " + where + " ORDER BY id")


def test_legacy_refused_modern_passes(daemon, store):
    with daemon.http() as h:
        assert h.allow() == (200, {"status": -1, "msg": REFUSAL})
        assert h.allow(mech="LOGIN") == (200, {"status": -1, "msg": REFUSAL.replace(
            "PLAIN", "LOGIN")})
        assert h.allow(mech="XOAUTH2") == (200, GO_ON)
        assert h.allow(mech="OAUTHBEARER", tls=True) == (200, GO_ON)
        # the same connection keeps serving (Dovecot keeps it alive)
        for _ in range(50):
            assert h.allow(mech="XOAUTH2")[0] == 200
    rows = wait_for(lambda: len(decision_rows(store)) >= 54 and decision_rows(store))
    assert rows[0] == ("alice@example.com", "PLAIN", "imap", "G/M0h6xh9O1/AAAB", "block",
                       "block-legacy", None, 0)
    assert rows[3][1:] == ("OAUTHBEARER", "imap", "G/M0h6xh9O1/AAAB", "allow", None, None, 1)


def test_dovecot_decisions_in_the_admin_views(daemon, store):
    """log, report legacy and explain --service show and replay them."""
    with daemon.http() as h:
        assert h.allow(login="bob@example.com", protocol="pop3", remote="192.0.2.7")[1][
            "status"] == -1
    wait_for(lambda: decision_rows(store, "user = 'bob@example.com'"))
    log = js(store, "log", "--user", "bob@example.com")
    entry = log[0] if isinstance(log, list) else log["decisions"][0]
    assert entry["service"] == "pop3" and entry["outcome"] == "block"
    out = ok(store, "log", "explain", str(entry["id"]))
    assert "block-legacy" in out
    legacy = json.dumps(js(store, "report", "legacy"))
    assert "bob@example.com" in legacy and "pop3" in legacy
    explained = run(store, "explain", "--user", "bob@example.com", "--mech", "PLAIN",
                    "--ip", "192.0.2.7", "--service", "pop3")
    assert explained.returncode == 1  # explain's status for a block
    assert "service pop3" in explained.stdout and "outcome:    block" in explained.stdout


def test_exception_and_service_scope_picked_up_on_the_next_request(daemon, store):
    with daemon.http() as h:
        assert h.allow()[1]["status"] == -1
        add_exception(store, user="alice@example.com")
        assert h.allow() == (200, GO_ON)
        assert h.allow(login="carol@example.com")[1]["status"] == -1
        ok(store, "policy", "set", "block-legacy", "--services", "pop3")
        assert h.allow(login="carol@example.com", protocol="imap") == (200, GO_ON)
        assert h.allow(login="carol@example.com", protocol="pop3")[1]["status"] == -1


def test_report_only_lets_the_login_through_and_logs_would_block(daemon, store):
    set_policy_state(store, "block-legacy", "report-only")
    with daemon.http() as h:
        assert h.allow(session_id="ro-1") == (200, GO_ON)
    rows = wait_for(lambda: decision_rows(store, "instance = 'ro-1'"))
    assert rows[0][4] == "would-block" and rows[0][6] == "block-legacy"


def test_reports_counted_per_service_class_and_result(daemon, store):
    with daemon.http() as h:
        assert h.report(success=True, mech="XOAUTH2") == (200, GO_ON)
        assert h.report(success=True, mech="XOAUTH2") == (200, GO_ON)
        assert h.report(success=False, mech="PLAIN", protocol="pop3") == (200, GO_ON)
        assert h.report(success=False, policy_reject=True) == (200, GO_ON)

    def rows():
        r = activity_rows(store, "SELECT service, mech_class, result, count FROM auth_results "
                          "ORDER BY service, mech_class, result")
        return len(r) == 3 and r
    assert wait_for(rows, timeout=8) == [("imap", "legacy", "policy_reject", 1),
                                         ("imap", "modern", "success", 2),
                                         ("pop3", "legacy", "failure", 1)]
    prom = ok(store, "stats", "--format", "prometheus")
    assert ('saslgate_daemon_auth_results_total{program="policyd",host=' in prom)
    assert 'service="imap",class="modern",result="success"} 2' in prom
    text = ok(store, "stats")
    assert "imap" in text and "policy_reject" in text


def test_missing_mech_answers_on_error_and_says_so_once(daemon, store):
    """Dovecot without mech=%m: every request would look unauthenticated."""
    with daemon.http() as h:
        for _ in range(3):
            assert h.allow(mech=None) == (200, {
                "status": -1, "msg": "saslgate: temporary policy error, try again later"})
    wait_for(lambda: "without \"mech\"" in daemon.log_text())
    log = daemon.log_text()
    assert log.count("without \"mech\"") == 1, log
    assert "auth_policy_request_attributes" in log
    assert not decision_rows(store)


def test_missing_mech_with_on_error_accept(tmp_path, store):
    d = Policyd(tmp_path, store, http=True, settings={"on_error": "accept"})
    try:
        with d.http() as h:
            assert h.allow(mech=None) == (200, GO_ON)
    finally:
        d.kill()


@pytest.mark.parametrize("method, path, body, status", [
    ("GET", "/?command=allow", b"", 405),
    ("PUT", "/?command=allow", b"{}", 405),
    ("POST", "/other?command=allow", b"{}", 404),
    ("POST", "/?command=drop", b"{}", 400),
    ("POST", "/", b"{}", 400),
    ("POST", "/?command=allow", b"{not json", 400),
    ("POST", "/?command=allow", b"[1, 2]", 400),
    ("POST", "/?command=allow", b'{"login": 5, "mech": "PLAIN"}', 400),
    ("POST", "/?command=allow", b'{"mech": "PLAIN", "tls": "maybe"}', 400),
    ("POST", "/?command=allow", b'{"mech": "PLA\\u0000IN"}', 400),
    ("POST", "/?command=allow", b'{"mech": "PLAIN", "mech": "XOAUTH2"}', 400),
])
def test_bad_requests_get_a_clear_status_and_cost_nothing_else(daemon, store, method, path,
                                                                body, status):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", daemon.http_port, timeout=5)
    c.request(method, path, body=body)
    r = c.getresponse()
    text = r.read().decode()
    assert r.status == status, text
    if status == 405:
        assert r.getheader("Allow") == "POST"
    c.close()
    with daemon.http() as h:
        assert h.allow()[1]["status"] == -1
    assert daemon.proc.poll() is None
    assert not decision_rows(store, "outcome = 'allow'")


def test_body_over_max_request_bytes_is_refused_without_reading_it(tmp_path, store):
    d = Policyd(tmp_path, store, http=True, settings={"max_request_bytes": "1024"})
    try:
        started = time.monotonic()
        # Content-Length announces 10 MB; the body is never sent.
        reply = raw(d.http_port, b"POST /?command=allow HTTP/1.1\r\nHost: x\r\n"
                    b"Content-Type: application/json\r\nContent-Length: 10000000\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 413"), reply
        assert time.monotonic() - started < 4
        with d.http() as h:
            assert h.allow()[1]["status"] == -1
    finally:
        d.kill()


def test_garbage_costs_the_connection_only(daemon):
    reply = raw(daemon.http_port, b"\x00\x01GARBAGE \xff\r\n\r\n")
    assert reply == b"" or reply.startswith(b"HTTP/1.1 400"), reply
    with daemon.http() as h:
        assert h.allow()[1]["status"] == -1


def test_api_key(tmp_path, store):
    d = Policyd(tmp_path, store, http=True, settings={"http_api_key": "s3cret"})
    try:
        with d.http() as h:
            assert h.allow()[0] == 401
            assert h.allow(headers={"X-API-Key": "wrong"})[0] == 401
            assert h.allow(headers={"X-API-Key": "s3cret"}) == (200, {"status": -1,
                                                                       "msg": REFUSAL})
        assert "s3cret" not in d.log_text()
    finally:
        d.kill()
    p = subprocess.run([POLICYD, "-n", "-d", str(store), "-o", "http_api_key=s3cret", "-l",
                        "http:127.0.0.1:1"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "http_api_key = (set, not shown)" in p.stdout and "s3cret" not in p.stdout


def test_stalled_request_is_closed_after_http_timeout(tmp_path, store):
    d = Policyd(tmp_path, store, http=True, settings={"http_timeout": "1s"})
    try:
        started = time.monotonic()
        reply = raw(d.http_port, b"POST /?command=allow HTTP/1.1\r\nHost: x\r\n", timeout=10)
        assert time.monotonic() - started < 5, reply
        with d.http() as h:
            assert h.allow()[1]["status"] == -1
    finally:
        d.kill()


def test_connections_share_max_connections_and_are_given_back(tmp_path, store):
    d = Policyd(tmp_path, store, http=True, settings={"max_connections": "3"})
    try:
        # Connections of every kind come and go; none may stay counted.
        for i in range(10):
            with d.http() as h:
                assert h.allow()[0] == 200
            raw(d.http_port, b"", timeout=0.2)                      # connect, close
            raw(d.http_port, b"POST /?command=allow HTTP/1.1\r\n", timeout=0.2)  # half
            raw(d.http_port, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", timeout=2)
        time.sleep(0.3)
        policy = d.client()
        policy.__enter__()
        assert policy.ask()  # a policy connection, idle from now on
        held = [d.http(), d.http()]
        for h in held:
            assert h.allow()[0] == 200
        # At the limit the idle policy connection makes room for a third
        # http: one; with only http: connections left, a new one is refused.
        third = d.http()
        assert third.allow()[0] == 200
        assert policy.closed_without_reply()
        assert raw(d.http_port, b"POST /?command=allow HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
                   timeout=5) == b""
        third.close()
        time.sleep(0.3)
        with d.http() as h:
            assert h.allow()[0] == 200
        policy.__exit__(None, None, None)
        for h in held:
            h.close()
        assert wait_for(lambda: "max_connections=3 reached" in d.log_text())
    finally:
        d.kill()


def test_stop_with_dovecot_connections_open_is_quick_and_clean(tmp_path, store):
    d = Policyd(tmp_path, store, http=True)
    held = [d.http() for _ in range(5)]
    for h in held:
        assert h.allow()[0] == 200
    started = time.monotonic()
    assert d.stop() == 0
    assert time.monotonic() - started < 3, d.log_text()
    for h in held:
        h.close()


def test_listen_syntax(tmp_path, store):
    p = subprocess.run([POLICYD, "-n", "-d", str(store), "-l", "http:nowhere"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    assert "http:nowhere" in p.stdout + p.stderr


def test_utf8_logins_stay_distinct(daemon, store):
    """Dovecot passes UTF-8 login names through as they are."""
    with daemon.http() as h:
        for login in ("jörg@example.de", "jürg@example.de", "jürg@example.de"):
            assert h.allow(login=login)[1]["status"] == -1
    def users():
        u = {e["user"]: e["count"] for e in js(store, "report", "legacy")["users"]}
        return sum(u.values()) >= 3 and u
    assert wait_for(users, timeout=8) == {"jörg@example.de": 1, "jürg@example.de": 2}
