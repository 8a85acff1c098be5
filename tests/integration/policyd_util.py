"""Helpers for the saslgate-policyd integration tests: a store made with
saslgatectl, a running saslgate-policyd on a UNIX socket (and optionally TCP
ports), a policy client speaking the Postfix policy delegation protocol, the
request attribute set Postfix 3.7 sends, and activity.db polling."""

import os
import random
import signal
import socket
import sqlite3
import subprocess
import time

from ctl_util import add_exception  # noqa: F401 (shared with the tests)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILDDIR = os.environ.get("SASLGATE_BUILDDIR", ROOT)
POLICYD = os.path.join(BUILDDIR, "saslgate-policyd")
CTL = os.path.join(BUILDDIR, "saslgatectl")

BLOCK_REPLY = (b"action=550 5.7.9 Authentication mechanism PLAIN is not allowed; "
               b"use OAuth2 (XOAUTH2/OAUTHBEARER)\n\n")
DUNNO = b"action=DUNNO\n\n"


def ctl(store_dir, *args, check=True):
    """Runs saslgatectl -d store_dir ARGS; returns the CompletedProcess."""
    proc = subprocess.run([CTL, "-d", str(store_dir)] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise AssertionError("saslgatectl %s failed (%d): %s%s" %
                             (" ".join(map(str, args)), proc.returncode, proc.stdout,
                              proc.stderr))
    return proc


def init_store(store_dir):
    """A fresh store as an administrator makes it: saslgatectl init (default
    policy block-legacy, enforce, location loopback)."""
    ctl(store_dir, "init")
    return str(store_dir)


def set_policy_state(store_dir, name, state):
    ctl(store_dir, "policy", "set", name, "--state", state)


def _sql_write(store_dir, sql, params=()):
    db = sqlite3.connect(os.path.join(store_dir, "policy.db"), timeout=5)
    with db:
        db.execute(sql, params)
        db.execute("UPDATE settings SET value = CAST(value AS INTEGER) + 1 "
                   "WHERE key = 'generation'")
    db.close()


def free_port(family=socket.AF_INET, host="127.0.0.1"):
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def postfix_request(**overrides):
    """The attributes Postfix 3.7 sends for a RCPT check of an authenticated
    submission, in Postfix's order (see SMTPD_POLICY_README). Keyword arguments
    replace values; a value of None removes the attribute."""
    attrs = [
        ("request", "smtpd_access_policy"),
        ("protocol_state", "RCPT"),
        ("protocol_name", "ESMTP"),
        ("helo_name", "client.example.net"),
        ("queue_id", ""),
        ("sender", "alice@example.com"),
        ("recipient", "bob@example.org"),
        ("recipient_count", "0"),
        ("client_address", "127.0.0.1"),
        ("client_name", "localhost"),
        ("reverse_client_name", "localhost"),
        ("instance", "%x.%x.0" % (os.getpid(), random.getrandbits(48))),
        ("sasl_method", "PLAIN"),
        ("sasl_username", "alice@example.com"),
        ("sasl_sender", ""),
        ("size", "0"),
        ("ccert_subject", ""),
        ("ccert_issuer", ""),
        ("ccert_fingerprint", ""),
        ("ccert_pubkey_fingerprint", ""),
        ("encryption_protocol", "TLSv1.3"),
        ("encryption_cipher", "TLS_AES_256_GCM_SHA384"),
        ("encryption_keysize", "256"),
        ("etrn_domain", ""),
        ("stress", ""),
        ("client_port", "52044"),
        ("policy_context", ""),
        ("server_address", "127.0.0.1"),
        ("server_port", "587"),
    ]
    out = []
    seen = set()
    for k, v in attrs:
        if k in overrides:
            v = overrides[k]
        seen.add(k)
        if v is not None:
            out.append((k, v))
    for k, v in overrides.items():
        if k not in seen and v is not None:
            out.append((k, v))
    return out


def encode(attrs, shuffle=False, eol=b"\n"):
    attrs = list(attrs)
    if shuffle:
        random.shuffle(attrs)
    return b"".join(("%s=%s" % (k, v)).encode() + eol for k, v in attrs) + eol


class PolicyClient:
    """One persistent connection, as a Postfix smtpd process keeps it."""

    def __init__(self, address, timeout=10.0):
        if isinstance(address, str):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        else:
            family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
            self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(address)
        self.pending = b""

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def read_reply(self):
        """Reads one reply, up to and including the empty line. Returns b"" if the
        server closed the connection first."""
        while b"\n\n" not in self.pending:
            chunk = self.sock.recv(65536)
            if not chunk:
                return b""
            self.pending += chunk
        end = self.pending.index(b"\n\n") + 2
        reply, self.pending = self.pending[:end], self.pending[end:]
        return reply

    def ask(self, attrs=None, shuffle=False, **overrides):
        if attrs is None:
            attrs = postfix_request(**overrides)
        self.send(encode(attrs, shuffle=shuffle))
        return self.read_reply()

    def closed_without_reply(self):
        """True if the server closes the connection without sending anything."""
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            return True
        return data == b"" and self.pending == b""


def dovecot_request(**overrides):
    """The JSON object Dovecot sends with auth_policy_request_attributes =
    login=%{requested_username} remote=%{rip} protocol=%s mech=%m
    session_id=%{session} (it adds "tls" itself); None drops a key."""
    attrs = {"login": "alice@example.com", "mech": "PLAIN", "protocol": "imap",
             "remote": "127.0.0.1", "session_id": "G/M0h6xh9O1/AAAB", "tls": False}
    attrs.update(overrides)
    return {k: v for k, v in attrs.items() if v is not None}


class AuthPolicyClient:
    """Dovecot's side of the auth policy protocol, over one keep-alive
    connection (http.client)."""

    def __init__(self, port, timeout=10.0):
        import http.client
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.conn.close()

    def post(self, command, body, headers=None, path="/"):
        """Returns (HTTP status, parsed JSON or the text body)."""
        import json
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        self.conn.request("POST", "%s?command=%s" % (path, command), body=data, headers=h)
        resp = self.conn.getresponse()
        text = resp.read().decode()
        if resp.getheader("Content-Type") == "application/json":
            return resp.status, json.loads(text)
        return resp.status, text

    def allow(self, headers=None, **overrides):
        return self.post("allow", dovecot_request(**overrides), headers)

    def report(self, success=True, policy_reject=False, **overrides):
        body = dovecot_request(**overrides)
        body.update(success=success, policy_reject=policy_reject)
        return self.post("report", body)


class Policyd:
    """saslgate-policyd in the foreground (-f), logging to a file."""

    def __init__(self, tmp_path, store_dir, settings=None, inet=False, inet6=False,
                 extra_args=(), config_file=None, http=False):
        self.tmp_path = tmp_path
        self.store_dir = str(store_dir)
        self.socket_path = str(tmp_path / "policyd.sock")
        self.log_path = str(tmp_path / "policyd.log")
        self.port = free_port() if inet else None
        self.port6 = free_port(socket.AF_INET6, "::1") if inet6 else None
        self.http_port = free_port() if http else None
        args = [POLICYD, "-f", "-d", self.store_dir, "-l", "unix:" + self.socket_path]
        if self.http_port:
            args += ["-l", "http:127.0.0.1:%d" % self.http_port]
        if self.port:
            args += ["-l", "inet:127.0.0.1:%d" % self.port]
        if self.port6:
            args += ["-l", "inet:[::1]:%d" % self.port6]
        if config_file:
            args += ["-c", str(config_file)]
        for k, v in (settings or {}).items():
            args += ["-o", "%s=%s" % (k, v)]
        args += list(extra_args)
        self.args = args
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        self.wait_ready()

    def wait_ready(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("saslgate-policyd exited with %d: %s" %
                                     (self.proc.returncode, self.log_text()))
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.connect(self.socket_path)
                break
            except OSError:
                time.sleep(0.02)
        else:
            raise AssertionError("saslgate-policyd did not start: " + self.log_text())
        # Let the daemon see the probe's EOF, so it does not count against
        # max_connections in the test that follows.
        time.sleep(0.05)
        return

    @property
    def pid(self):
        return self.proc.pid

    def client(self, timeout=10.0):
        return PolicyClient(self.socket_path, timeout)

    def inet_client(self, timeout=10.0):
        return PolicyClient(("127.0.0.1", self.port), timeout)

    def inet6_client(self, timeout=10.0):
        return PolicyClient(("::1", self.port6), timeout)

    def http(self, timeout=10.0):
        """A keep-alive HTTP connection to the http: endpoint."""
        return AuthPolicyClient(self.http_port, timeout)

    def log_text(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_log(self, needle, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.log_text():
                return True
            time.sleep(0.02)
        raise AssertionError("%r not logged; log:\n%s" % (needle, self.log_text()))

    def sanitized(self):
        """True if the daemon runs with AddressSanitizer, whose quarantine makes
        RSS meaningless as a leak measure."""
        with open("/proc/%d/maps" % self.pid) as f:
            return "libasan" in f.read()

    def rss_kb(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=15.0):
        """SIGTERM; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("saslgate-policyd did not stop on SIGTERM: " +
                                 self.log_text())
        self.log.close()
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not self.log.closed:
            self.log.close()


def run_policyd(args, timeout=30):
    return subprocess.run([POLICYD] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout)


def activity_rows(store_dir, sql, params=()):
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(str(store_dir), "activity.db"),
                         uri=True, timeout=5)
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def wait_for(predicate, timeout=10.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            return value
        time.sleep(interval)
