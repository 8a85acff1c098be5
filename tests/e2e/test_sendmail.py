"""End to end with a real Sendmail 8.17 (Debian's binary, fetched with
`apt-get download` and unpacked, never installed), Cyrus SASL with a private
sasldb, and saslgate-milter hooked with the shipped
contrib/sendmail/saslgate.mc fragment.  Real swaks/raw clients submit over
loopback; each scenario asserts what the client saw, what reached Sendmail's
private queue and what the milter recorded."""
import re
import shutil
import signal
import time

import pytest

import clients
import rig
import sendmail_rig as sr

USERS = ["alice@example.test", "scanner@example.test", "bob@example.test",
         "carol@example.test", "dave@example.test"]
LEGACY = ["PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5"]
RCPT = "someone@remote.test"
# Sendmail's queue ids (8.17: 14 characters, e.g. 6AU5KEJj012547).
QUEUE_ID = re.compile(r"^[0-9A-Za-z]{14}$")


def tag(name):
    return "%s-%d" % (name, time.monotonic_ns())


class SendmailRig:
    """saslgate store + saslgate-milter (inet) + a private Sendmail."""

    def __init__(self, binary, cf_dir, **sendmail_options):
        self.root = rig.make_world_dir("saslgate-e2e-sm-")
        self.saslgate = sr.SendmailSaslgate(self.root)
        self.sm_root = sr.safe_dir()
        self.sendmail = sr.Sendmail(self.sm_root, binary, cf_dir,
                                    self.saslgate.milter_port, USERS, **sendmail_options)
        self.mnt_ns = None

    @property
    def port(self):
        return self.sendmail.port

    def start(self):
        self.saslgate.init()
        self.saslgate.start_milter_inet()
        self.sendmail.start()
        self.mnt_ns = sr.namespace_of(self.sendmail.pid)

    def stop(self):
        try:
            self.sendmail.stop()
        finally:
            self.saslgate.stop_all()

    def cleanup(self):
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.sm_root, ignore_errors=True)

    def ctl(self, *args, **kw):
        return self.saslgate.ctl(*args, **kw)

    def reply_text(self, mech):
        """The block-legacy policy's reply, %m expanded, as stored by saslgatectl."""
        reply = self.saslgate.ctl_json("policy", "show", "block-legacy")["reply"]
        code, enhanced, text = reply.split(" ", 2)
        return code, enhanced, text.replace("%m", mech)

    def submit(self, mech, user, source="127.0.0.1", t=None, decided=True, port=None):
        """One submission (mech None: no AUTH). With decided, waits for the
        milter's decision row of this MAIL FROM and keeps it in self.row, so
        that every row is attributed to the submission that caused it."""
        t = t or tag(user.split("@")[0])
        before = self.last_id()
        port = port or self.port
        if mech in ("login", "plain"):
            res = clients.raw_auth(port, mech, user, [RCPT], source=source, tag=t)
        else:
            res = clients.swaks(port, mech, user, [RCPT], source=source, tag=t)
        self.row = None
        if decided:
            assert res.stage != "auth", res
            self.row = self.decision_after(before)
            assert self.row["sender"] == user and self.row["client"] == source, self.row
        return res, t

    def expect_refused(self, res, t, mech):
        code, enhanced, text = self.reply_text(mech.upper())
        assert not res.accepted, res
        assert res.stage == "mail", res
        assert res.code == int(code), res
        assert enhanced in res.text and text in res.text, res
        assert not self.sendmail.queued_with(t), "refused mail was queued"

    def expect_queued(self, res, t):
        assert res.accepted, res.transcript
        ids = self.sendmail.queued_with(t)
        assert len(ids) == 1, (ids, self.sendmail.queued())
        return ids[0]

    def last_id(self):
        rows = self.saslgate.decisions()
        return rows[-1]["id"] if rows else 0

    def decision_after(self, after_id, timeout=10):
        """The one decision row recorded after after_id (waits for the writer)."""
        rows = rig.wait_for(lambda: [r for r in self.saslgate.decisions()
                                     if r["id"] > after_id], timeout,
                            "a decision row after id %d" % after_id)
        assert len(rows) == 1, rows
        return rows[0]

    def remove_exceptions(self):
        for exc in self.saslgate.ctl_json("exception", "list", "--all"):
            self.ctl("exception", "remove", exc["id"])


@pytest.fixture(scope="module")
def sendmail_pkgs():
    """The unpacked Sendmail packages (fetched once into a cache). A failure to
    fetch them fails the tests with the reason; it never skips."""
    sr.require_tools()
    debs = sr.fetch_debs()
    pkg_root = sr.safe_dir("pkg-")
    try:
        yield sr.unpack(debs, pkg_root)
    finally:
        shutil.rmtree(pkg_root, ignore_errors=True)


@pytest.fixture(scope="module")
def sm(sendmail_pkgs):
    binary, cf_dir = sendmail_pkgs
    m = SendmailRig(binary, cf_dir)
    try:
        m.start()
        yield m
    finally:
        try:
            m.stop()
            sr.assert_nothing_left(m.sendmail, m.mnt_ns)
        finally:
            m.cleanup()


# --- the shipped fragment is what runs -------------------------------------------


def test_cf_is_built_from_the_shipped_fragment(sm):
    fragment = sr.read_fragment()
    mc = (sm.sm_root / "test.mc").read_text()
    assert sr.splice_fragment(fragment, sm.saslgate.milter_port) in mc
    cf = sm.sendmail.cf.read_text()
    # INPUT_MAIL_FILTER and the macro lists of the fragment reached sendmail.cf.
    flags = sr.fragment_flags(fragment)
    assert re.search(r"^Xsaslgate, S=inet:%d@127\.0\.0\.1, F=%s," %
                     (sm.saslgate.milter_port, flags), cf, re.M), cf
    assert re.search(r"^O InputMailFilters=saslgate$", cf, re.M)
    for opt in ("Milter.macros.connect", "Milter.macros.envfrom"):
        m = re.search(r"^O %s=(.*)$" % re.escape(opt), cf, re.M)
        assert m, "%s missing from sendmail.cf" % opt
    connect = re.search(r"^O Milter.macros.connect=(.*)$", cf, re.M).group(1)
    assert "{daemon_name}" in [x.strip() for x in connect.split(",")], connect
    envfrom = re.search(r"^O Milter.macros.envfrom=(.*)$", cf, re.M).group(1)
    for macro in ("i", "{auth_type}", "{auth_authen}"):
        assert macro in [x.strip() for x in envfrom.split(",")], envfrom


def test_filter_asks_for_its_macros_itself(sm, sendmail_pkgs):
    """The fragment says saslgate-milter requests its macros (smfi_setsymlist)
    and its confMILTER_MACROS_* lines are only a fallback: a second Sendmail
    whose lists lack every saslgate macro still gives the filter the
    mechanism, the user, the service and the queue id."""
    binary, cf_dir = sendmail_pkgs
    fragment = sr.read_fragment()
    bare = re.sub(r"^define\(`confMILTER_MACROS_CONNECT'.*$",
                  "define(`confMILTER_MACROS_CONNECT', `j')dnl", fragment, flags=re.M)
    bare = re.sub(r"^define\(`confMILTER_MACROS_ENVFROM'.*$",
                  "define(`confMILTER_MACROS_ENVFROM', `{mail_addr}')dnl", bare, flags=re.M)
    assert bare.count("`j')dnl") == 1 and bare.count("`{mail_addr}')dnl") == 1, bare
    other = sr.Sendmail(sr.safe_dir(), binary, cf_dir, sm.saslgate.milter_port,
                        USERS, fragment=bare)
    ns = None
    try:
        other.start()
        ns = sr.namespace_of(other.pid)
        cf = other.cf.read_text()
        assert "O Milter.macros.envfrom={mail_addr}\n" in cf
        before = sm.last_id()
        t = tag("bare")
        res = clients.swaks(other.port, "PLAIN", "alice@example.test", [RCPT], tag=t)
        sm.expect_refused(res, t, "PLAIN")
        row = sm.decision_after(before)
        assert (row["mech"], row["user"], row["service"]) == (
            "PLAIN", "alice@example.test", "MTA"), row
        assert QUEUE_ID.match(row["queue_id"] or ""), row
    finally:
        try:
            other.stop()
            sr.assert_nothing_left(other, ns)
        finally:
            shutil.rmtree(other.root, ignore_errors=True)


# --- 1. the default policy after saslgatectl init -------------------------------


@pytest.mark.parametrize("mech", LEGACY + ["login"])
def test_default_policy_refuses_legacy_at_mail_from(sm, mech):
    before = set(sm.sendmail.queued())
    res, t = sm.submit(mech, "alice@example.test")
    sm.expect_refused(res, t, mech)
    assert set(sm.sendmail.queued()) == before


def test_unauthenticated_is_left_to_sendmail(sm):
    """No AUTH: saslgate has no opinion (the milter continues and records
    not-authenticated); Sendmail's own relay rules decide: it relays for
    127.0.0.1 (proto.m4: "originated locally") and refuses 127.0.0.2."""
    res, t = sm.submit(None, "stranger@remote.test")
    sm.expect_queued(res, t)
    assert sm.row["outcome"] == "not-authenticated" and sm.row["mech"] is None, sm.row
    res, t = sm.submit(None, "stranger@remote.test", source="127.0.0.2")
    assert not res.accepted and res.stage == "rcpt", res
    assert res.rejections and res.rejections[0][0] == 550, res
    assert "Relaying denied" in res.rejections[0][1] and "5.7.9" not in res.transcript, res
    assert not sm.sendmail.queued_with(t)
    assert sm.row["outcome"] == "not-authenticated", sm.row


# --- 2. exceptions ------------------------------------------------------------------


def test_user_exception_lets_that_user_queue(sm):
    sm.ctl("exception", "add", "--user", "scanner@example.test", "--expires", "1d",
           "--reason", "MFP scanner cannot do OAuth2")
    try:
        res, t = sm.submit("PLAIN", "scanner@example.test")
        qid = sm.expect_queued(res, t)
        assert qid in sm.sendmail.mailq()
        res, t = sm.submit("PLAIN", "alice@example.test")
        sm.expect_refused(res, t, "PLAIN")
    finally:
        sm.remove_exceptions()


def test_user_exception_limited_to_a_location(sm):
    sm.ctl("location", "add", "scanners", "127.0.0.2/32")
    sm.ctl("exception", "add", "--user", "bob@example.test", "--location", "scanners",
           "--expires", "1d", "--reason", "scanner on its own network")
    try:
        res, t = sm.submit("LOGIN", "bob@example.test", source="127.0.0.2")
        sm.expect_queued(res, t)
        res, t = sm.submit("LOGIN", "bob@example.test", source="127.0.0.1")
        sm.expect_refused(res, t, "LOGIN")
        res, t = sm.submit("LOGIN", "alice@example.test", source="127.0.0.2")
        sm.expect_refused(res, t, "LOGIN")
    finally:
        sm.remove_exceptions()
        sm.ctl("location", "remove", "scanners")


# --- 3. report-only -----------------------------------------------------------------


def test_report_only_queues_and_records_would_block(sm):
    sm.ctl("policy", "set", "block-legacy", "--state", "report-only")
    try:
        queued = []
        for mech in ("PLAIN", "CRAM-MD5"):
            res, t = sm.submit(mech, "dave@example.test")
            qid = sm.expect_queued(res, t)
            queued.append(qid)
            row = sm.row
            assert row["queue_id"] == qid, row
            assert row["outcome"] == "would-block", row
            assert row["report_only"] == "block-legacy", row
            assert row["user"] == "dave@example.test" and row["mech"] == mech, row
    finally:
        sm.ctl("policy", "set", "block-legacy", "--state", "enforce")
    res, t = sm.submit("PLAIN", "dave@example.test")
    sm.expect_refused(res, t, "PLAIN")
    check_ctl_reports(sm, "dave@example.test", queued, ["PLAIN", "CRAM-MD5"])


def check_ctl_reports(sm, user, queue_ids, mechs):
    """`saslgatectl log` and `report legacy` show the would-block submissions."""
    rows = sm.saslgate.ctl_json("log", "--user", user, "--limit", "0")
    by_queue_id = {r.get("queue_id"): r for r in rows}
    for qid in queue_ids:
        row = by_queue_id.get(qid)
        assert row and row["outcome"] == "would-block", (qid, rows)
        assert row["daemon"] == "milter" and row["report_only"] == ["block-legacy"], row
    text = sm.ctl("log", "--user", user).stdout
    assert text.count("would-block") >= len(queue_ids), text
    report = {u["user"]: u for u in sm.saslgate.ctl_json("report", "legacy")["users"]}
    assert user in report, report
    assert set(mechs) <= set(report[user]["mechanisms"]), report[user]
    assert user in sm.ctl("report", "legacy").stdout


# --- 4. live change -----------------------------------------------------------------


def test_live_exception_added_then_removed(sm):
    res, t = sm.submit("DIGEST-MD5", "carol@example.test")
    sm.expect_refused(res, t, "DIGEST-MD5")
    add = sm.saslgate.ctl_json("exception", "add", "--user", "carol@example.test",
                               "--expires", "1h", "--reason", "migration week")
    try:
        res, t = sm.submit("DIGEST-MD5", "carol@example.test")
        sm.expect_queued(res, t)
    finally:
        sm.ctl("exception", "remove", add["id"])
    res, t = sm.submit("DIGEST-MD5", "carol@example.test")
    sm.expect_refused(res, t, "DIGEST-MD5")


# --- 5. the milter stopped: the fragment's F= flag ---------------------------------


def test_milter_down_applies_the_fragment_flag_and_recovers(sm):
    flags = sr.fragment_flags(sr.read_fragment())
    sm.ctl("exception", "add", "--user", "scanner@example.test", "--expires", "1d",
           "--reason", "scanner")
    try:
        sm.saslgate.stop("milter")
        assert not sr.listening(sm.saslgate.milter_port)
        for user in ("alice@example.test", "scanner@example.test"):
            res, t = sm.submit("PLAIN", user, decided=False)
            if "T" in flags:      # documented: temporary failure, clients retry
                # Sendmail 8.17 tempfails the whole session when it cannot reach
                # the filter at connect: 454 4.3.0 at AUTH already.
                assert not res.accepted and 400 <= res.code < 500, res
                assert res.stage in ("auth", "mail"), res
                assert "5.7.9" not in res.transcript
            elif "R" in flags:    # reject
                assert not res.accepted and 500 <= res.code < 600, res
            else:                 # no flag: Sendmail carries on without the filter
                assert res.accepted, res
            if flags:
                assert not sm.sendmail.queued_with(t)
        sm.saslgate.start_milter_inet()
        res, t = sm.submit("PLAIN", "alice@example.test")
        sm.expect_refused(res, t, "PLAIN")
        res, t = sm.submit("PLAIN", "scanner@example.test")
        sm.expect_queued(res, t)
    finally:
        if not sm.saslgate.milter_running():
            sm.saslgate.start_milter_inet()
        sm.remove_exceptions()


def test_milter_hung_times_out_to_tempfail(sm):
    """The fragment's T= limits: a filter that accepts but never answers (here:
    SIGSTOPped) costs the client the R: timeout, then the F=T tempfail."""
    fragment = sr.read_fragment()
    m = re.search(r"T=[^']*R:(\d+)s", sr.fragment_filter_line(fragment))
    assert m, sr.fragment_filter_line(fragment)
    read_timeout = int(m.group(1))
    proc = sm.saslgate.procs["milter"]
    proc.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        res, t = sm.submit("PLAIN", "alice@example.test", decided=False)
        took = time.monotonic() - started
    finally:
        proc.send_signal(signal.SIGCONT)
    assert not res.accepted and 400 <= res.code < 500, res
    assert not sm.sendmail.queued_with(t)
    assert read_timeout - 1 <= took < read_timeout + 8, took
    res, t = sm.submit("PLAIN", "alice@example.test")
    sm.expect_refused(res, t, "PLAIN")


def test_fragment_documents_tempfail():
    """The shipped fragment recommends F=T (tempfail) and says why."""
    text = sr.read_fragment()
    assert sr.fragment_flags(text) == "T"
    assert "F=T" in text and "temporary failure" in text


# --- 6. the Sendmail macros reached the decisions -----------------------------------


def wait_rows(sm, pred, count, timeout=10):
    return rig.wait_for(lambda: (lambda rows: len(rows) >= count and rows)(
        [r for r in sm.saslgate.decisions() if pred(r)]), timeout,
        "%d matching decision rows" % count)


def test_decisions_carry_sendmail_macros(sm):
    sm.ctl("location", "add", "branch", "127.0.0.2/32")
    sm.ctl("exception", "add", "--user", "scanner@example.test", "--location", "branch",
           "--expires", "1d", "--reason", "scanner")
    try:
        cases = [("PLAIN", "alice@example.test", "127.0.0.1", "block"),
                 ("CRAM-MD5", "bob@example.test", "127.0.0.2", "block"),
                 ("login", "carol@example.test", "127.0.0.1", "block"),
                 ("DIGEST-MD5", "scanner@example.test", "127.0.0.2", "allow")]
        for mech, user, source, outcome in cases:
            res, t = sm.submit(mech, user, source=source)
            qid = None
            if outcome == "allow":
                qid = sm.expect_queued(res, t)
            else:
                sm.expect_refused(res, t, mech)
            row = sm.row
            assert row["daemon"] == "milter", row
            assert row["outcome"] == outcome, row
            assert row["user"] == user, row                    # {auth_authen}
            assert row["mech"] == mech.upper(), row            # {auth_type}
            assert row["mech_class"] == "legacy", row
            assert row["client"] == source, row                # connect address
            assert row["service"] == "MTA", row                # {daemon_name}
            assert row["sender"] == user, row                  # MAIL FROM
            assert QUEUE_ID.match(row["queue_id"] or ""), row  # i
            if qid:
                assert row["queue_id"] == qid, (row, qid)
            else:
                assert row["policy"] == "block-legacy", row
    finally:
        sm.remove_exceptions()
        sm.ctl("location", "remove", "branch")


# --- the per-listener deployment (README "Deploying with Sendmail") ---------------


def test_per_listener_recipe(sendmail_pkgs):
    """README variant: MAIL_FILTER instead of INPUT_MAIL_FILTER, the filter named
    only on the submission listener (InputMailFilters=saslgate), AUTH switched
    off on port 25 (M=A). Legacy submissions are refused on the MSA; inbound
    mail on the MTA listener never reaches the filter, so a saslgate outage
    defers submissions only."""
    binary, cf_dir = sendmail_pkgs
    fragment = sr.read_fragment()
    assert fragment.count("\nINPUT_MAIL_FILTER(") == 1
    per_listener = fragment.replace("\nINPUT_MAIL_FILTER(", "\nMAIL_FILTER(")
    m = SendmailRig(binary, cf_dir, fragment=per_listener, mta_options="M=A", msa=True)
    try:
        m.start()
        msa = m.sendmail.msa_port
        cf = m.sendmail.cf.read_text()
        assert not re.search(r"^O InputMailFilters=", cf, re.M), cf
        res, t = m.submit("PLAIN", "alice@example.test", port=msa)
        m.expect_refused(res, t, "PLAIN")
        assert m.row["service"] == "MSA", m.row
        # Port 25 offers no AUTH at all, so no legacy login can bypass the filter.
        res = clients.swaks(m.port, "PLAIN", "alice@example.test", [RCPT])
        assert not res.accepted, res
        assert re.search(r"^<-  250[- ]8BITMIME", res.transcript, re.M), res.transcript
        assert not re.search(r"^<-  250[- ]AUTH", res.transcript, re.M), res.transcript
        # Inbound (unauthenticated) mail on port 25 is not filtered: no decision.
        before = m.last_id()
        t = tag("inbound")
        res = clients.swaks(m.port, None, "sender@remote.test", [RCPT], tag=t)
        m.expect_queued(res, t)
        m.saslgate.stop("milter")
        t = tag("inbound-down")
        res = clients.swaks(m.port, None, "sender@remote.test", [RCPT], tag=t)
        m.expect_queued(res, t)
        assert m.last_id() == before, m.saslgate.decisions()[-1]
        res, t = m.submit("PLAIN", "alice@example.test", port=msa, decided=False)
        assert not res.accepted and 400 <= res.code < 500, res
        assert not m.sendmail.queued_with(t)
    finally:
        try:
            m.stop()
            sr.assert_nothing_left(m.sendmail, m.mnt_ns)
        finally:
            m.cleanup()

