"""Real clients for the end-to-end tests: swaks for the SMTP password
mechanisms, Python smtplib for XOAUTH2 and OAUTHBEARER, a raw socket client
for mechanisms spelled in lower case, a SCRAM-SHA-256 client, and Python's
imaplib and poplib for IMAP and POP3 logins.

Every submission returns a Result: where the session ended, the server's
reply there, and the per-recipient outcome. Every IMAP or POP3 login returns
a Login: whether it succeeded and the server's final reply line."""
import base64
import hashlib
import hmac
import imaplib
import os
import poplib
import re
import smtplib
import socket
import subprocess
from dataclasses import dataclass, field

from rig import PASSWORD, mint_jwt


@dataclass
class Result:
    accepted: bool                 # the message was accepted (250 after DATA)
    stage: str                     # "auth", "mail", "rcpt", "data" or "done"
    code: int = 0                  # the reply code where it failed
    text: str = ""                 # the reply text where it failed
    rejections: list = field(default_factory=list)  # (code, text) per refused rcpt
    transcript: str = ""


MESSAGE = ("From: {sender}\r\nTo: {rcpts}\r\nSubject: saslgate e2e {tag}\r\n"
           "Message-Id: <{tag}@example.test>\r\n\r\nbody {tag}\r\n")


def swaks(port, mech, user, rcpts, source="127.0.0.1", password=PASSWORD, tag="t"):
    """Submits with swaks and parses its transcript."""
    argv = ["swaks", "--server", "127.0.0.1", "--port", str(port),
            "--local-interface", source, "--helo", "client.example.test",
            "--from", user, "--to", ",".join(rcpts),
            "--header", "Subject: saslgate e2e %s" % tag,
            "--timeout", "20"]
    if mech:
        argv += ["--auth", mech, "--auth-user", user, "--auth-password", password]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    out = proc.stdout + proc.stderr
    errors = [l[4:] for l in out.splitlines() if l.startswith("<** ")]
    sent = [l for l in out.splitlines() if l.startswith("<- ") or l.startswith("<** ")]
    stage = "done"
    rejections = []
    last_cmd = None
    for line in out.splitlines():
        if line.startswith(" -> "):
            last_cmd = line[4:].split(" ", 1)[0].upper().rstrip(":")
        elif line.startswith("<** "):
            code = int(line[4:7]) if line[4:7].isdigit() else 0
            if last_cmd == "RCPT":
                rejections.append((code, line[4:]))
            elif stage == "done":
                stage = {"AUTH": "auth", "MAIL": "mail", "DATA": "data"}.get(last_cmd,
                                                                              "other")
    accepted = proc.returncode == 0 or (stage == "done" and len(rejections) < len(rcpts)
                                         and re.search(r"<- +250 .*queued", out) is not None)
    if not accepted and stage == "done" and rejections:
        stage = "rcpt"
    code, text = 0, ""
    if errors:
        first = errors[0]
        code = int(first[:3]) if first[:3].isdigit() else 0
        text = first
    return Result(accepted=accepted, stage=stage, code=code, text=text,
                  rejections=rejections, transcript=out)


class _Session:
    """smtplib session that records where it failed."""

    def __init__(self, port, source):
        self.smtp = smtplib.SMTP("127.0.0.1", port, local_hostname="client.example.test",
                                 source_address=(source, 0), timeout=20)
        self.smtp.ehlo()

    def send(self, user, rcpts, tag):
        s = self.smtp
        code, msg = s.mail(user)
        if code != 250:
            return Result(False, "mail", code, msg.decode(errors="replace"))
        rejections = []
        for rcpt in rcpts:
            code, msg = s.rcpt(rcpt)
            if code not in (250, 251):
                rejections.append((code, msg.decode(errors="replace")))
        if len(rejections) == len(rcpts):
            s.rset()
            return Result(False, "rcpt", rejections[0][0], rejections[0][1],
                          rejections=rejections)
        code, msg = s.data(MESSAGE.format(sender=user, rcpts=", ".join(rcpts),
                                          tag=tag).encode())
        if code != 250:
            return Result(False, "data", code, msg.decode(errors="replace"),
                          rejections=rejections)
        return Result(True, "done", rejections=rejections)

    def close(self):
        try:
            self.smtp.quit()
        except (smtplib.SMTPException, OSError):
            self.smtp.close()


def oauth(port, mech, user, rcpts, source="127.0.0.1", token=None, tag="t"):
    """XOAUTH2 or OAUTHBEARER with a JWT minted for the user."""
    token = token or mint_jwt(user)
    if mech.upper() == "XOAUTH2":
        initial = "user=%s\x01auth=Bearer %s\x01\x01" % (user, token)
    else:
        initial = "n,a=%s,\x01host=127.0.0.1\x01port=%d\x01auth=Bearer %s\x01\x01" % (
            user, port, token)
    sess = _Session(port, source)
    try:
        try:
            sess.smtp.auth(mech, lambda challenge=None: initial, initial_response_ok=True)
        except smtplib.SMTPAuthenticationError as e:
            return Result(False, "auth", e.smtp_code, e.smtp_error.decode(errors="replace"))
        return sess.send(user, rcpts, tag)
    finally:
        sess.close()


def raw_auth(port, mech_spelling, user, rcpts, source="127.0.0.1", tag="t"):
    """AUTH with the mechanism spelled as given (e.g. "plain", "login")."""
    sess = _Session(port, source)
    s = sess.smtp
    try:
        if mech_spelling.lower() == "plain":
            resp = base64.b64encode(("\0%s\0%s" % (user, PASSWORD)).encode()).decode()
            code, msg = s.docmd("AUTH", "%s %s" % (mech_spelling, resp))
        elif mech_spelling.lower() == "login":
            code, msg = s.docmd("AUTH", mech_spelling)
            if code == 334:
                code, msg = s.docmd(base64.b64encode(user.encode()).decode())
            if code == 334:
                code, msg = s.docmd(base64.b64encode(PASSWORD.encode()).decode())
        else:
            raise ValueError("raw_auth supports plain and login")
        if code != 235:
            return Result(False, "auth", code, msg.decode(errors="replace"))
        return sess.send(user, rcpts, tag)
    finally:
        sess.close()


def scram_sha256(port, user, rcpts, source="127.0.0.1", tag="t"):
    """SCRAM-SHA-256 (RFC 7677) without channel binding."""
    sess = _Session(port, source)
    s = sess.smtp
    try:
        nonce = base64.b64encode(os.urandom(18)).decode()
        saslname = user.replace("=", "=3D").replace(",", "=2C")
        first_bare = "n=%s,r=%s" % (saslname, nonce)
        code, msg = s.docmd("AUTH", "SCRAM-SHA-256 " +
                            base64.b64encode(("n,," + first_bare).encode()).decode())
        if code != 334:
            return Result(False, "auth", code, msg.decode(errors="replace"))
        server_first = base64.b64decode(msg).decode()
        attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
        salted = hashlib.pbkdf2_hmac("sha256", PASSWORD.encode(),
                                     base64.b64decode(attrs["s"]), int(attrs["i"]))
        client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        stored_key = hashlib.sha256(client_key).digest()
        final_wo_proof = "c=biws,r=%s" % attrs["r"]
        auth_message = ",".join([first_bare, server_first, final_wo_proof]).encode()
        signature = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        final = "%s,p=%s" % (final_wo_proof, base64.b64encode(proof).decode())
        code, msg = s.docmd(base64.b64encode(final.encode()).decode())
        if code == 334:  # server-final message; empty response completes
            code, msg = s.docmd("")
        if code != 235:
            return Result(False, "auth", code, msg.decode(errors="replace"))
        return sess.send(user, rcpts, tag)
    finally:
        sess.close()


def unauthenticated(port, sender, rcpts, source="127.0.0.1", tag="t"):
    sess = _Session(port, source)
    try:
        return sess.send(sender, rcpts, tag)
    finally:
        sess.close()


@dataclass
class Login:
    ok: bool                       # logged in, and a command after it worked
    reply: str                     # the server's answer to the login (no tag)
    transcript: list = field(default_factory=list)  # the server's lines


def oauth_initial(mech, user, port, token=None):
    """The initial client response of XOAUTH2 or OAUTHBEARER with a JWT."""
    token = token or mint_jwt(user)
    if mech.upper() == "XOAUTH2":
        return "user=%s\x01auth=Bearer %s\x01\x01" % (user, token)
    return "n,a=%s,\x01host=127.0.0.1\x01port=%d\x01auth=Bearer %s\x01\x01" % (
        user, port, token)


class _Imap(imaplib.IMAP4):
    """imaplib, recording what the server said."""

    def __init__(self, port, source):
        self.lines = []
        self._source = source
        super().__init__("127.0.0.1", port, timeout=20)

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self._source, 0))

    def _get_line(self):
        line = super()._get_line()
        self.lines.append(line.decode(errors="replace"))
        return line


def _imap_session(port, source, login):
    """Connects, runs login(imap) and, if it succeeded, SELECT INBOX."""
    imap = _Imap(port, source)
    try:
        try:
            login(imap)
            ok = True
        except imaplib.IMAP4.error:
            ok = False
        # The tagged line that ended the login: "A0002 NO [ALERT] ...".
        tagged = [l for l in imap.lines if l.split(" ", 1)[0].startswith(
            imap.tagpre.decode())]
        reply = tagged[-1].split(" ", 1)[1] if tagged else ""
        if ok:
            typ, _ = imap.select("INBOX")
            ok = typ == "OK"
        return Login(ok, reply, imap.lines)
    finally:
        try:
            imap.logout()
        except (imaplib.IMAP4.error, OSError):
            imap.shutdown()


def imap_login(port, user, password=PASSWORD, source="127.0.0.1"):
    """IMAP LOGIN (Dovecot passes it to the auth process as PLAIN)."""
    return _imap_session(port, source, lambda imap: imap.login(user, password))


def imap_authenticate(port, mech, user, password=PASSWORD, source="127.0.0.1", token=None):
    """IMAP AUTHENTICATE PLAIN, LOGIN, CRAM-MD5, XOAUTH2 or OAUTHBEARER.
    imaplib sends the mechanism, then each answer after a "+" challenge; to
    a challenge after the last answer (an XOAUTH2 error) it answers empty, as
    RFC 7628 says."""
    mech = mech.upper()
    if mech == "PLAIN":
        answers = ["\0%s\0%s" % (user, password)]
    elif mech == "LOGIN":
        answers = [user, password]
    elif mech == "CRAM-MD5":
        answers = [lambda challenge: "%s %s" % (user, hmac.new(
            password.encode(), challenge, hashlib.md5).hexdigest())]
    else:
        answers = [oauth_initial(mech, user, port, token)]

    def respond(challenge):
        answer = answers.pop(0) if answers else ""
        return answer(challenge) if callable(answer) else answer
    return _imap_session(port, source, lambda imap: imap.authenticate(mech, respond))


class _Pop3(poplib.POP3):
    """poplib, bound to a source address."""

    def __init__(self, port, source):
        self._source = source
        super().__init__("127.0.0.1", port, timeout=20)

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self._source, 0))


def pop3_userpass(port, user, password=PASSWORD, source="127.0.0.1"):
    """POP3 USER + PASS (Dovecot: PLAIN); success is confirmed with STAT."""
    pop = _Pop3(port, source)
    lines = [pop.getwelcome().decode(errors="replace")]
    try:
        try:
            lines.append(pop.user(user).decode(errors="replace"))
            lines.append(pop.pass_(password).decode(errors="replace"))
        except poplib.error_proto as e:
            lines.append(e.args[0].decode(errors="replace"))
            return Login(False, lines[-1], lines)
        pop.stat()
        return Login(True, lines[-1], lines)
    finally:
        try:
            pop.quit()
        except (poplib.error_proto, OSError):
            pop.close()


def pop3_authenticate(port, mech, user, password=PASSWORD, source="127.0.0.1", token=None):
    """POP3 AUTH MECH with the initial response on the command line (RFC 5034)."""
    if mech.upper() == "PLAIN":
        initial = "\0%s\0%s" % (user, password)
    else:
        initial = oauth_initial(mech, user, port, token)
    pop = _Pop3(port, source)
    lines = [pop.getwelcome().decode(errors="replace")]
    try:
        try:
            resp = pop._shortcmd("AUTH %s %s" % (
                mech, base64.b64encode(initial.encode()).decode()))
            while resp == b"+" or resp.startswith(b"+ "):  # an XOAUTH2 error challenge
                lines.append(resp.decode(errors="replace"))
                resp = pop._shortcmd("")
        except poplib.error_proto as e:
            lines.append(e.args[0].decode(errors="replace"))
            return Login(False, lines[-1], lines)
        lines.append(resp.decode(errors="replace"))
        pop.stat()
        return Login(True, lines[-1], lines)
    finally:
        try:
            pop.quit()
        except (poplib.error_proto, OSError):
            pop.close()
