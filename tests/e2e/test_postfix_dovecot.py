"""End to end: a real Postfix 3.7 with Dovecot SASL, protected by saslgate's
policy daemon, its milter, or both; real clients submit over loopback.
Each scenario asserts what the client saw and what Postfix delivered."""
import time

import pytest

import clients
import rig

RCPT = "someone@remote.test"
LEGACY = ["PLAIN", "LOGIN", "CRAM-MD5"]


def tag(name):
    return "%s-%d" % (name, time.monotonic_ns())


@pytest.mark.parametrize("mech", LEGACY)
def test_default_policy_rejects_legacy(mail, mech):
    t = tag(mech)
    res = clients.swaks(mail.port, mech, "alice@example.test", [RCPT], tag=t)
    mail.expect_rejected(res, mech)
    assert not mail.postfix.delivered(t)


def test_default_policy_rejects_lower_case_plain(mail):
    res = clients.raw_auth(mail.port, "plain", "alice@example.test", [RCPT])
    mail.expect_rejected(res, "PLAIN")


def test_default_policy_rejects_lower_case_login(mail):
    res = clients.raw_auth(mail.port, "login", "alice@example.test", [RCPT])
    mail.expect_rejected(res, "LOGIN")


@pytest.mark.parametrize("mech", ["XOAUTH2", "OAUTHBEARER"])
def test_default_policy_delivers_oauth(mail, mech):
    rcpt = "%s@remote.test" % tag(mech.lower())
    res = clients.oauth(mail.port, mech, "alice@example.test", [rcpt])
    assert res.accepted, res
    assert mail.postfix.wait_delivered(rcpt)


def test_unauthenticated_is_left_to_postfix(mail):
    before = len(mail.saslgate.decisions())
    res = clients.unauthenticated(mail.port, "stranger@remote.test", [RCPT])
    # Postfix's own restrictions refuse relaying; saslgate's 5.7.9 is not involved.
    assert not res.accepted
    assert res.stage == "rcpt" and res.code == 554, res
    assert "5.7.9" not in res.text and "Access denied" in res.text
    if mail.hooks == "policyd":
        rows = mail.saslgate.wait_decisions(before + 1)
        assert rows[-1]["outcome"] == "not-authenticated"


def test_user_exception_limited_to_a_location(mail):
    mail.ctl("location", "add", "scanners", "127.0.0.2/32")
    add = mail.ctl("--json", "exception", "add", "--user", "scanner@example.test",
                   "--location", "scanners", "--expires", "1d",
                   "--reason", "MFP scanner cannot do OAuth2")
    try:
        rcpt = "%s@remote.test" % tag("scan")
        inside = clients.swaks(mail.port, "PLAIN", "scanner@example.test", [rcpt],
                               source="127.0.0.2")
        assert inside.accepted, inside.transcript
        assert mail.postfix.wait_delivered(rcpt)
        t = tag("scan-outside")
        outside = clients.swaks(mail.port, "PLAIN", "scanner@example.test", [RCPT],
                                source="127.0.0.1", tag=t)
        mail.expect_rejected(outside, "PLAIN")
        other = clients.swaks(mail.port, "PLAIN", "alice@example.test", [RCPT],
                              source="127.0.0.2")
        mail.expect_rejected(other, "PLAIN")
    finally:
        for exc in mail.saslgate.ctl_json("exception", "list", "--all"):
            mail.ctl("exception", "remove", exc["id"])
        mail.ctl("location", "remove", "scanners")


def test_live_change_is_seen_by_the_next_submission(mail):
    first = clients.swaks(mail.port, "LOGIN", "bob@example.test", [RCPT])
    mail.expect_rejected(first, "LOGIN")
    out = mail.ctl("--json", "exception", "add", "--user", "bob@example.test",
                   "--expires", "2h", "--reason", "migration window").stdout
    try:
        rcpt = "%s@remote.test" % tag("live")
        second = clients.swaks(mail.port, "LOGIN", "bob@example.test", [rcpt])
        assert second.accepted, second.transcript
        assert mail.postfix.wait_delivered(rcpt)
    finally:
        for exc in mail.saslgate.ctl_json("exception", "list", "--all"):
            mail.ctl("exception", "remove", exc["id"])
    third = clients.swaks(mail.port, "LOGIN", "bob@example.test", [RCPT])
    mail.expect_rejected(third, "LOGIN")
    assert out


def test_report_only_delivers_and_records_would_block(mail):
    mail.ctl("policy", "set", "block-legacy", "--state", "report-only")
    try:
        rcpt = "%s@remote.test" % tag("report")
        res = clients.swaks(mail.port, "PLAIN", "carol@example.test", [rcpt])
        assert res.accepted, res.transcript
        assert mail.postfix.wait_delivered(rcpt)
        # saslgatectl shows it: the decision log and the legacy usage report.
        log = rig.wait_for(
            lambda: [r for r in mail.saslgate.ctl_json("log", "--user", "carol@example.test",
                                                       "--outcome", "would-block")], 10,
            "a would-block decision for carol in saslgatectl log")
        assert log[0]["mech"] == "PLAIN" and log[0]["report_only"] == ["block-legacy"]
        expected = {"policyd": {"policyd"}, "milter": {"milter"},
                    "both": {"policyd", "milter"}}[mail.hooks]
        rig.wait_for(lambda: {r["daemon"] for r in mail.saslgate.ctl_json(
            "log", "--user", "carol@example.test", "--outcome", "would-block")} == expected,
            10, "would-block decisions from %s" % sorted(expected))
        report = mail.saslgate.ctl_json("report", "legacy", "--user", "carol@example.test")
        entry = [u for u in report["users"] if u["user"] == "carol@example.test"][0]
        assert "PLAIN" in entry["mechanisms"] and entry["count"] >= 1
        assert any(e["last_outcome"] == "would-block" for e in entry["entries"])
    finally:
        mail.ctl("policy", "set", "block-legacy", "--state", "enforce")


def test_five_recipients_one_decision(mail):
    rcpts = ["r%d-%s@remote.test" % (i, tag("multi")) for i in range(5)]
    before = len(mail.saslgate.decisions())
    res = clients.swaks(mail.port, "PLAIN", "alice@example.test", rcpts)
    assert not res.accepted
    if mail.hooks == "policyd":
        # Postfix asks once per recipient and needs an answer for each.
        assert len(res.rejections) == 5, res.transcript
        for code, text in res.rejections:
            assert code == 550 and "5.7.9" in text
    else:
        # The milter refuses the whole transaction at MAIL FROM.
        assert res.stage == "mail" and res.code == 550, res.transcript
    rows = mail.saslgate.wait_decisions(before + 1)
    time.sleep(0.5)  # give a (wrong) second record the chance to show up
    rows = mail.saslgate.decisions()[before:]
    assert len(rows) == 1, rows
    assert rows[0]["outcome"] == "block"


def test_failure_behaviour_and_recovery(mail):
    """With the recommended settings: the policy daemon down -> Postfix's
    smtpd_policy_service_default_action (451 4.3.5); the milter down ->
    milter_default_action = tempfail (a 4xx for the session). Restarted -> normal service."""
    sg = mail.saslgate
    if mail.hooks in ("milter", "both"):
        sg.stop("milter")
        res = clients.swaks(mail.port, "PLAIN", "alice@example.test",
                            [RCPT])
        assert not res.accepted
        # Postfix turns every command after the failed milter connect into a
        # temporary error (AUTH gets 454 4.3.0, MAIL 451 4.7.1).
        assert res.stage in ("auth", "mail") and res.code // 100 == 4, res.transcript
        sg.start_milter()
    if mail.hooks in ("policyd", "both"):
        sg.stop("policyd")
        rcpt = "%s@remote.test" % tag("down")
        res = clients.oauth(mail.port, "XOAUTH2", "alice@example.test", [rcpt])
        assert not res.accepted
        assert res.stage == "rcpt" and res.code == 451 and "4.3.5" in res.text, res
        sg.start_policyd()
    # Back to normal: modern delivered, legacy refused.
    rcpt = "%s@remote.test" % tag("recovered")
    res = rig.wait_for(lambda: (lambda r: r if r.accepted else None)(
        clients.oauth(mail.port, "XOAUTH2", "alice@example.test", [rcpt])), 20,
        "normal service after the restart")
    assert mail.postfix.wait_delivered(rcpt)
    legacy = clients.swaks(mail.port, "PLAIN", "alice@example.test", [RCPT])
    mail.expect_rejected(legacy, "PLAIN")
