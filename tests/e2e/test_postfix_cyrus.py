"""End to end with Cyrus SASL inside Postfix's smtpd (sasldb): the legacy
mechanisms are refused, SCRAM-SHA-256 (class password) passes the default
policy, and the mechanism Cyrus reports is what saslgate decided on."""
import time

import pytest

import clients
from conftest import MailRig
from rig import wait_for

RCPT = "someone@remote.test"


@pytest.fixture(scope="module", params=["policyd", "milter"])
def cyrus(request):
    m = MailRig(request.param, sasl="cyrus")
    try:
        m.start()
        yield m
    finally:
        m.stop()
        m.cleanup()


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5"])
def test_cyrus_legacy_rejected(cyrus, mech):
    res = clients.swaks(cyrus.port, mech, "carol@example.test", [RCPT])
    cyrus.expect_rejected(res, mech)


def test_cyrus_scram_is_password_class_and_passes(cyrus):
    def scram_rows():
        return [r for r in cyrus.saslgate.decisions() if r["mech"] == "SCRAM-SHA-256"]

    before = len(scram_rows())
    rcpt = "scram-%d@remote.test" % time.monotonic_ns()
    res = clients.scram_sha256(cyrus.port, "carol@example.test", [rcpt])
    assert res.accepted, res
    assert cyrus.postfix.wait_delivered(rcpt)
    # The module's earlier tests left decisions: wait for this one's.
    rows = wait_for(lambda: scram_rows()[before:], 10, "the SCRAM-SHA-256 decision")
    assert rows[-1]["mech_class"] == "password" and rows[-1]["outcome"] == "allow"


def test_cyrus_scram_blocked_when_password_class_is_targeted(cyrus):
    cyrus.ctl("policy", "set", "block-legacy", "--mech", "legacy,password")
    try:
        res = clients.scram_sha256(cyrus.port, "carol@example.test", [RCPT])
        cyrus.expect_rejected(res, "SCRAM-SHA-256")
    finally:
        cyrus.ctl("policy", "set", "block-legacy", "--mech", "legacy")
