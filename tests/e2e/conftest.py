"""Fixtures of the end-to-end suite: a private Postfix with Dovecot SASL (or
Cyrus SASL) and saslgate's daemons, started per module and stopped by pid."""
import shutil

import pytest

import rig

USERS = ["alice@example.test", "scanner@example.test", "bob@example.test",
         "carol@example.test"]


@pytest.fixture(scope="session", autouse=True)
def e2e_requirements():
    rig.require_packages()


class MailRig:
    """Dovecot + saslgate store and daemons + Postfix, with the hooks given."""

    def __init__(self, hooks, sasl="dovecot"):
        self.hooks = hooks
        self.root = rig.make_world_dir("saslgate-e2e-")
        self.saslgate = rig.Saslgate(self.root)
        if sasl == "dovecot":
            self.sasl = rig.Dovecot(self.root, USERS)
        else:
            self.sasl = rig.CyrusSasl(self.root, USERS)
        self.postfix = None

    @property
    def port(self):
        return self.postfix.port

    def start(self):
        self.saslgate.init()
        self.sasl.start()
        if self.hooks in ("policyd", "both"):
            self.saslgate.start_policyd()
        if self.hooks in ("milter", "both"):
            self.saslgate.start_milter()
        self.postfix = rig.Postfix(
            self.root, self.sasl,
            policy=self.saslgate.policy_endpoint() if self.hooks in ("policyd", "both")
            else None,
            milter=self.saslgate.milter_endpoint() if self.hooks in ("milter", "both")
            else None)
        self.postfix.start()

    def stop(self):
        try:
            if self.postfix is not None:
                self.postfix.stop()
        finally:
            self.saslgate.stop_all()
            self.sasl.stop()

    def cleanup(self):
        shutil.rmtree(self.root, ignore_errors=True)

    def ctl(self, *args, **kw):
        return self.saslgate.ctl(*args, **kw)

    def expect_rejected(self, result, mech):
        """The rejection saslgate causes for a legacy mechanism with this rig's hooks:
        at MAIL FROM by the milter, at RCPT TO by the policy daemon."""
        wanted = "Authentication mechanism %s is not allowed" % mech
        assert not result.accepted, result
        if self.hooks in ("milter", "both"):
            assert result.stage == "mail", result
        else:
            assert result.stage == "rcpt", result
        assert result.code == 550, result
        assert "5.7.9" in result.text and wanted in result.text, result


@pytest.fixture(scope="module", params=["policyd", "milter", "both"])
def mail(request):
    m = MailRig(request.param)
    try:
        m.start()
        yield m
    finally:
        m.stop()
        m.cleanup()
