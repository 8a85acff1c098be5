"""End to end: a real Dovecot 2.3 serving IMAP and POP3 (and SASL for a real
Postfix) asks saslgate-policyd's HTTP listener before it checks any password,
configured with contrib/dovecot/95-saslgate-policy.conf. Real clients
(imaplib, poplib, swaks, smtplib) log in over loopback; each test asserts what
the client saw, and what saslgatectl shows of the decision."""
import json
import shutil
import subprocess
import time

import pytest

import clients
import rig

TEXT = "Authentication mechanism %s is not allowed; use OAuth2 (XOAUTH2/OAUTHBEARER)"
IMAP_REFUSED = "NO [ALERT] " + TEXT
POP3_REFUSED = "-ERR [AUTH] " + TEXT
# What Dovecot says when it has no usable answer (auth_policy_reject_on_fail).
IMAP_FAILED = "NO [AUTHENTICATIONFAILED] Authentication failed."
POP3_FAILED = "-ERR [AUTH] Authentication failed."
API_KEY = "e2e-api-key-7d1c5f"
DOMAIN = "e2e.test"
USERS = ["%s@%s" % (u, DOMAIN) for u in (
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan",
    "judy", "mallory", "oscar", "scanner", "smtp")]


class PolicyRig:
    """A saslgate store, saslgate-policyd with an HTTP listener, and the
    Dovecot instances that ask it."""

    def __init__(self, settings=None):
        self.root = rig.make_world_dir("saslgate-e2e-dovecot-")
        self.saslgate = rig.Saslgate(self.root)
        self.http_port = rig.free_port()
        self.url = "http://127.0.0.1:%d/" % self.http_port
        self.settings = settings or {}
        self.dovecots = []
        self.log_error = ""

    def start(self):
        self.saslgate.init()
        self.start_policyd()

    def start_policyd(self):
        self.saslgate.start_policyd(http_ports=[self.http_port], settings=self.settings)

    def policyd_pid(self):
        return self.saslgate.procs["policyd"].pid

    def dovecot(self, name, api_header=None):
        d = rig.DovecotMail(self.root, USERS, self.url, api_header=api_header, name=name)
        self.dovecots.append(d)
        d.start()
        return d

    def stop(self):
        for d in self.dovecots:
            d.stop()
        self.saslgate.stop_all()

    def ctl(self, *args, **kw):
        return self.saslgate.ctl(*args, **kw)

    def log(self, user, outcome=None):
        """saslgatectl log --json for one user; [] while the daemon has not
        written activity.db yet (the error is kept for wait_log's message)."""
        args = ["--json", "log", "--user", user]
        if outcome:
            args += ["--outcome", outcome]
        proc = self.ctl(*args, check=False)
        self.log_error = proc.stderr.strip()
        return json.loads(proc.stdout) if proc.returncode == 0 else []

    def wait_log(self, user, outcome, count=1, **where):
        """The user's decisions with this outcome (and the fields in where),
        once there are count of them."""
        def rows():
            found = [r for r in self.log(user, outcome)
                     if all(r[k] == v for k, v in where.items())]
            return found if len(found) >= count else None
        try:
            return rig.wait_for(rows, 10)
        except TimeoutError:
            raise AssertionError("fewer than %d %s decision(s) %s for %s in saslgatectl log "
                                 "after 10 s (%s); all of them: %s" % (
                                     count, outcome, where, user,
                                     self.log_error or "no error", self.log(user))) from None


def _rig(settings=None):
    r = PolicyRig(settings)
    try:
        r.start()
    except Exception:
        r.stop()
        raise
    return r


@pytest.fixture(scope="module")
def sg():
    r = _rig()
    try:
        yield r
    finally:
        r.stop()
        shutil.rmtree(r.root, ignore_errors=True)


@pytest.fixture(scope="module")
def dovecot(sg):
    return sg.dovecot("dovecot")


@pytest.fixture(scope="module")
def postfix(sg, dovecot):
    p = rig.Postfix(sg.root, dovecot)
    try:
        p.start()
        yield p
    finally:
        p.stop()


@pytest.fixture(scope="module")
def keyed():
    r = _rig({"http_api_key": API_KEY})
    try:
        yield r
    finally:
        r.stop()
        shutil.rmtree(r.root, ignore_errors=True)


@pytest.fixture(scope="module")
def keyed_dovecot(keyed):
    return keyed.dovecot("dovecot-key", api_header="X-API-Key: %s" % API_KEY)


@pytest.fixture(scope="module")
def wrong_key_dovecot(keyed):
    return keyed.dovecot("dovecot-wrong-key", api_header="X-API-Key: not-%s" % API_KEY)


@pytest.fixture
def cleanup(sg):
    """Undo a test's store changes: exceptions, locations, the default policy."""
    yield
    for exc in sg.saslgate.ctl_json("exception", "list", "--all"):
        sg.ctl("exception", "remove", exc["id"])
    for loc in sg.saslgate.ctl_json("location", "list"):
        if loc["name"] != "loopback":
            sg.ctl("location", "remove", loc["name"])
    sg.ctl("policy", "set", "block-legacy", "--state", "enforce", "--services", "any")


# IMAP and POP3 -------------------------------------------------------------

def test_snippet_is_what_dovecot_runs(dovecot):
    """The rig's Dovecot includes the shipped snippet; doveconf shows its
    values in effect (fail closed, the mechanism sent)."""
    out = subprocess.run(["doveconf", "-c", str(dovecot.root / "dovecot.conf"),
                          "auth_policy_request_attributes", "auth_policy_reject_on_fail",
                          "auth_policy_check_before_auth", "auth_policy_server_url"],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    assert "mech=%m" in out and "auth_policy_reject_on_fail = yes" in out, out
    assert "auth_policy_check_before_auth = yes" in out, out
    assert dovecot.policy_url in out, out


def test_imap_login_refused_with_the_policy_text(sg, dovecot):
    res = clients.imap_login(dovecot.imap_port, "alice@e2e.test")
    assert not res.ok, res
    assert res.reply == IMAP_REFUSED % "PLAIN", res


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_imap_authenticate_legacy_refused_with_the_policy_text(sg, dovecot, mech):
    res = clients.imap_authenticate(dovecot.imap_port, mech, "alice@e2e.test")
    assert not res.ok, res
    assert res.reply == IMAP_REFUSED % mech, res


def test_wrong_password_gets_the_same_refusal(sg, dovecot, cleanup):
    """No password oracle: the refusal comes before any passdb, so a wrong
    password gets the right password's answer and is never checked. With an
    exception the passdb does run, and says so (the control)."""
    user = "mallory@e2e.test"
    mark = len(dovecot.log())
    right = clients.imap_login(dovecot.imap_port, user)
    wrong = clients.imap_login(dovecot.imap_port, user, password="wrong-password")
    wrong_plain = clients.imap_authenticate(dovecot.imap_port, "PLAIN", user,
                                            password="wrong-password")
    wrong_pop3 = clients.pop3_userpass(dovecot.pop3_port, user, password="wrong-password")
    assert right.reply == wrong.reply == wrong_plain.reply == IMAP_REFUSED % "PLAIN"
    assert wrong_pop3.reply == POP3_REFUSED % "PLAIN", wrong_pop3
    assert not (right.ok or wrong.ok or wrong_plain.ok or wrong_pop3.ok)
    assert "Password mismatch" not in dovecot.log()[mark:]
    # The control: with an exception, the same wrong password reaches the passdb.
    sg.ctl("exception", "add", "--user", user, "--expires", "1h", "--reason", "e2e control")
    checked = clients.imap_login(dovecot.imap_port, user, password="wrong-password")
    assert not checked.ok and checked.reply != IMAP_REFUSED % "PLAIN", checked
    assert "AUTHENTICATIONFAILED" in checked.reply, checked
    rig.wait_for(lambda: "Password mismatch" in dovecot.log()[mark:], 5,
                 "Dovecot's passdb to log the wrong password")


@pytest.mark.parametrize("mech", ["XOAUTH2", "OAUTHBEARER"])
def test_imap_oauth_passes(sg, dovecot, mech):
    user = "erin@e2e.test"
    res = clients.imap_authenticate(dovecot.imap_port, mech, user)
    assert res.ok, res
    assert res.reply.startswith("OK"), res
    sg.wait_log(user, "allow", mech=mech, service="imap")


def test_imap_oauth_with_a_bad_token_is_refused_by_dovecot_not_saslgate(sg, dovecot):
    """The oauth2 passdb is real: saslgate lets XOAUTH2 through, Dovecot
    checks the token."""
    token = rig.mint_jwt("erin@e2e.test", lifetime=-60)  # expired
    res = clients.imap_authenticate(dovecot.imap_port, "XOAUTH2", "erin@e2e.test",
                                    token=token)
    assert not res.ok, res
    assert "ALERT" not in res.reply and "not allowed" not in res.reply, res


def test_pop3_user_pass_refused(sg, dovecot):
    res = clients.pop3_userpass(dovecot.pop3_port, "alice@e2e.test")
    assert not res.ok, res
    assert res.reply == POP3_REFUSED % "PLAIN", res


def test_pop3_xoauth2_passes(sg, dovecot):
    res = clients.pop3_authenticate(dovecot.pop3_port, "XOAUTH2", "erin@e2e.test")
    assert res.ok, res
    assert res.reply.startswith("+OK"), res


def test_user_exception_picked_up_on_the_next_login(sg, dovecot, cleanup):
    user = "bob@e2e.test"
    policyd, master = sg.policyd_pid(), dovecot.master_pid()
    assert clients.imap_login(dovecot.imap_port, user).reply == IMAP_REFUSED % "PLAIN"
    sg.ctl("exception", "add", "--user", user, "--expires", "1h",
           "--reason", "IMAP client without OAuth2")
    passed = clients.imap_login(dovecot.imap_port, user)
    assert passed.ok, passed
    assert clients.pop3_userpass(dovecot.pop3_port, user).ok
    for mech in ("LOGIN", "CRAM-MD5"):
        res = clients.imap_authenticate(dovecot.imap_port, mech, user)
        assert res.ok, res
    other = clients.imap_login(dovecot.imap_port, "alice@e2e.test")
    assert other.reply == IMAP_REFUSED % "PLAIN", other
    for exc in sg.saslgate.ctl_json("exception", "list", "--all"):
        sg.ctl("exception", "remove", exc["id"])
    again = clients.imap_login(dovecot.imap_port, user)
    assert again.reply == IMAP_REFUSED % "PLAIN", again
    # Nothing was restarted or reloaded.
    assert (sg.policyd_pid(), dovecot.master_pid()) == (policyd, master)


def test_location_exception_picked_up_on_the_next_login(sg, dovecot, cleanup):
    user = "scanner@e2e.test"
    sg.ctl("location", "add", "scanners", "127.0.0.2/32")
    sg.ctl("exception", "add", "--location", "scanners", "--expires", "1d",
           "--reason", "MFP scanners cannot do OAuth2")
    inside = clients.imap_login(dovecot.imap_port, user, source="127.0.0.2")
    assert inside.ok, inside
    inside_pop3 = clients.pop3_userpass(dovecot.pop3_port, user, source="127.0.0.2")
    assert inside_pop3.ok, inside_pop3
    outside = clients.imap_login(dovecot.imap_port, user, source="127.0.0.1")
    assert outside.reply == IMAP_REFUSED % "PLAIN", outside
    rows = sg.wait_log(user, "allow", 2)
    assert {r["client"] for r in rows} == {"127.0.0.2"}, rows
    assert {r["client"] for r in sg.wait_log(user, "block")} == {"127.0.0.1"}


def test_policy_scoped_to_one_service(sg, dovecot, cleanup):
    user = "grace@e2e.test"
    sg.ctl("policy", "set", "block-legacy", "--services", "pop3")
    imap = clients.imap_login(dovecot.imap_port, user)
    assert imap.ok, imap
    pop3 = clients.pop3_userpass(dovecot.pop3_port, user)
    assert pop3.reply == POP3_REFUSED % "PLAIN", pop3
    explained = sg.saslgate.ctl_json("explain", "--user", user, "--ip", "127.0.0.1",
                                     "--mech", "PLAIN", "--service", "imap")
    assert explained["outcome"] == "allow", explained
    assert explained["policies"][0]["failed_condition"] == "service", explained
    sg.ctl("policy", "set", "block-legacy", "--services", "imap")
    assert clients.imap_login(dovecot.imap_port, user).reply == IMAP_REFUSED % "PLAIN"
    assert clients.pop3_userpass(dovecot.pop3_port, user).ok


def test_report_only_lets_the_login_through_and_logs_would_block(sg, dovecot, cleanup):
    user = "carol@e2e.test"
    sg.ctl("policy", "set", "block-legacy", "--state", "report-only")
    res = clients.imap_login(dovecot.imap_port, user)
    assert res.ok, res
    pop3 = clients.pop3_userpass(dovecot.pop3_port, user)
    assert pop3.ok, pop3
    rows = sg.wait_log(user, "would-block", 2)
    assert {r["service"] for r in rows} == {"imap", "pop3"}, rows
    for r in rows:
        assert r["mech"] == "PLAIN" and r["report_only"] == ["block-legacy"], r
    assert not sg.log(user, "block")


def test_refusals_in_log_and_report_legacy(sg, dovecot):
    user = "dave@e2e.test"
    assert clients.imap_login(dovecot.imap_port, user).reply == IMAP_REFUSED % "PLAIN"
    assert clients.pop3_userpass(dovecot.pop3_port, user).reply == POP3_REFUSED % "PLAIN"
    rows = sg.wait_log(user, "block", 2)
    assert {r["service"] for r in rows} == {"imap", "pop3"}, rows
    for r in rows:
        assert (r["user"], r["client"], r["mech"], r["mech_class"], r["policy"]) == (
            user, "127.0.0.1", "PLAIN", "legacy", "block-legacy"), r
        assert r["tls"] is False, r
        # session_id is recorded as the instance: Dovecot logs the same id.
        assert r["instance"] and "session=<%s>" % r["instance"] in dovecot.log(), r
    report = sg.saslgate.ctl_json("report", "legacy", "--user", user)
    entry = [u for u in report["users"] if u["user"] == user]
    assert entry, report
    assert entry[0]["mechanisms"] == ["PLAIN"] and entry[0]["count"] >= 2, entry
    assert entry[0]["last_outcome"] == "block", entry


def test_one_login_one_decision(sg, dovecot):
    """Dovecot sends command=allow, then command=report: the report is
    counted, not logged as a second decision."""
    user = "frank@e2e.test"
    assert clients.imap_login(dovecot.imap_port, user).reply == IMAP_REFUSED % "PLAIN"
    assert clients.imap_authenticate(dovecot.imap_port, "XOAUTH2", user).ok
    sg.wait_log(user, "allow")
    sg.wait_log(user, "block")
    time.sleep(0.5)  # give a (wrong) second record the chance to show up
    rows = sg.log(user)
    assert sorted(r["outcome"] for r in rows) == ["allow", "block"], rows


def _auth_results(sg):
    counts = {}
    for r in sg.saslgate.ctl_json("stats").get("auth_results", []):
        key = (r["service"], r["class"], r["result"])
        counts[key] = counts.get(key, 0) + r["count"]
    return counts


def test_dovecot_reports_counted_in_stats(sg, dovecot):
    """command=report: what Dovecot says happened after the check, counted per
    service, mechanism class and result (saslgatectl stats)."""
    user = "oscar@e2e.test"
    before = _auth_results(sg)
    assert clients.imap_authenticate(dovecot.imap_port, "XOAUTH2", user).ok
    bad = clients.imap_authenticate(dovecot.imap_port, "XOAUTH2", user, token="not-a-jwt")
    assert bad.reply == IMAP_FAILED, bad
    assert clients.pop3_userpass(dovecot.pop3_port, user).reply == POP3_REFUSED % "PLAIN"
    wanted = {("imap", "modern", "success"): 1, ("imap", "modern", "failure"): 1,
              ("pop3", "legacy", "policy_reject"): 1}

    # The counters travel with the heartbeats (1 s here): "before" may lack
    # the previous test's reports, so a count may grow by more than wanted.
    def counted():
        now = _auth_results(sg)
        return all(now.get(k, 0) - before.get(k, 0) >= n for k, n in wanted.items()) and now
    try:
        rig.wait_for(counted, 10)
    except TimeoutError:
        raise AssertionError("Dovecot's reports %s not counted in saslgatectl stats "
                             "(before: %s, after: %s)" % (wanted, before,
                                                          _auth_results(sg))) from None


def test_policyd_down_fails_closed(sg, dovecot):
    """auth_policy_reject_on_fail = yes: without an answer no login passes,
    not even XOAUTH2; back up, service is normal at once."""
    user = "heidi@e2e.test"
    sg.saslgate.stop("policyd")
    try:
        res = clients.imap_authenticate(dovecot.imap_port, "XOAUTH2", user)
        assert not res.ok and res.reply == IMAP_FAILED, res
        pop3 = clients.pop3_authenticate(dovecot.pop3_port, "XOAUTH2", user)
        assert not pop3.ok and pop3.reply == POP3_FAILED, pop3
    finally:
        sg.start_policyd()
    res = rig.wait_for(lambda: (lambda r: r if r.ok else None)(
        clients.imap_authenticate(dovecot.imap_port, "XOAUTH2", user)), 15,
        "XOAUTH2 to pass again after the restart")
    assert res.ok
    assert clients.imap_login(dovecot.imap_port, user).reply == IMAP_REFUSED % "PLAIN"


# SMTP through Postfix with Dovecot SASL -------------------------------------

RCPT = "someone@remote.test"


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_smtp_auth_legacy_refused_at_auth(sg, postfix, mech):
    user = "smtp@e2e.test"
    tag = "smtp-%s-%d" % (mech, time.monotonic_ns())
    res = clients.swaks(postfix.port, mech, user, [RCPT], tag=tag)
    assert not res.accepted, res.transcript
    # Refused at AUTH (for LOGIN after the password line): no MAIL was sent.
    assert res.code == 535 and res.stage in ("auth", "other"), res
    assert " -> MAIL FROM" not in res.transcript, res.transcript
    assert "5.7.8 Error: authentication failed: " + TEXT % mech in res.text, res
    assert not postfix.delivered(tag)
    sg.wait_log(user, "block", mech=mech, service="smtp")


def test_smtp_xoauth2_delivered(sg, postfix):
    user = "smtp@e2e.test"
    rcpt = "xoauth2-%d@remote.test" % time.monotonic_ns()
    res = clients.oauth(postfix.port, "XOAUTH2", user, [rcpt])
    assert res.accepted, res
    assert postfix.wait_delivered(rcpt)
    sg.wait_log(user, "allow", mech="XOAUTH2", service="smtp")


# The shared secret ----------------------------------------------------------

def test_api_key_matching_header_is_decided(keyed, keyed_dovecot):
    user = "ivan@e2e.test"
    refused = clients.imap_login(keyed_dovecot.imap_port, user)
    assert refused.reply == IMAP_REFUSED % "PLAIN", refused
    assert clients.imap_authenticate(keyed_dovecot.imap_port, "XOAUTH2", user).ok
    assert keyed.wait_log(user, "block") and keyed.wait_log(user, "allow")


def test_api_key_wrong_header_fails_closed(keyed, wrong_key_dovecot):
    user = "judy@e2e.test"
    res = clients.imap_authenticate(wrong_key_dovecot.imap_port, "XOAUTH2", user)
    assert not res.ok and res.reply == IMAP_FAILED, res
    pop3 = clients.pop3_userpass(wrong_key_dovecot.pop3_port, user)
    assert not pop3.ok and pop3.reply == POP3_FAILED, pop3
    # Refused because saslgate-policyd answered 401, not for another reason.
    assert "Policy server HTTP error: 401" in wrong_key_dovecot.log()
    time.sleep(0.5)
    assert keyed.log(user) == [], "a request without the key was decided"
