"""Helpers for the saslgate-milter integration tests: a policy.db built from the
schema (as "saslgatectl init" would), a running saslgate-milter on a UNIX
socket, and polling activity.db."""

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time

from ctl_util import add_exception  # noqa: F401 (shared with the tests)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILDDIR = os.environ.get("SASLGATE_BUILDDIR", ROOT)
MILTER = os.path.join(BUILDDIR, "saslgate-milter")
CTL = os.path.join(BUILDDIR, "saslgatectl")
LUA_DIR = os.path.join(ROOT, "tests", "milter")

DEFAULT_REPLY = ("Authentication mechanism %m is not allowed; "
                 "use OAuth2 (XOAUTH2/OAUTHBEARER)")


def ctl(store_dir, *args):
    p = subprocess.run([CTL, "-d", store_dir] + list(args), capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0, "saslgatectl %s: %s%s" % (" ".join(args), p.stdout, p.stderr)
    return p.stdout


def create_store(store_dir, policy_state="enforce"):
    """policy.db made by "saslgatectl init": the catalogue, the policy
    block-legacy (state policy_state) and the location loopback."""
    ctl(store_dir, "init")
    if policy_state != "enforce":
        ctl(store_dir, "policy", "set", "block-legacy", "--state", policy_state)


def store_write(store_dir, sql, params=()):
    """One admin-style write: the change plus the generation bump, in one
    transaction (what saslgatectl does through store_audit)."""
    db = sqlite3.connect(os.path.join(store_dir, "policy.db"), timeout=5)
    with db:
        db.execute(sql, params)
        db.execute("UPDATE settings SET value = CAST(value AS INTEGER) + 1 "
                   "WHERE key = 'generation'")
    db.close()


def wait_for(predicate, timeout=10.0, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(interval)


def activity_rows(store_dir, sql, params=()):
    path = os.path.join(store_dir, "activity.db")
    if not os.path.exists(path):
        return []
    try:
        db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=5)
        try:
            return db.execute(sql, params).fetchall()
        finally:
            db.close()
    except sqlite3.OperationalError:
        return []  # not created or not migrated yet


class Milter:
    """saslgate-milter -f on a UNIX socket in a short temporary directory (a
    pytest tmp_path can exceed the 108-byte sun_path limit)."""

    def __init__(self, store_dir, extra_args=(), path=None):
        self.store_dir = store_dir
        if path is None:
            self.sockdir = tempfile.mkdtemp(prefix="sgm", dir="/tmp")
            path = os.path.join(self.sockdir, "milter.sock")
        else:
            self.sockdir = os.path.dirname(path)
        self.path = path
        self.address = "unix:" + self.path
        self.log_path = os.path.join(store_dir, "milter-%d.log" % time.monotonic_ns())
        self.log = open(self.log_path, "w")
        args = [MILTER, "-f", "-d", store_dir, "-p", self.address,
                "-o", "socket_mode=0666", "-o", "heartbeat_interval=1s",
                "-o", "activity_flush_ms=10"] + list(extra_args)
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_for(self._ready, timeout=10, what="the milter socket")
        except AssertionError:
            self.stop()
            raise AssertionError("saslgate-milter did not start:\n" + self.output())

    def _ready(self):
        if self.proc.poll() is not None:
            raise AssertionError("saslgate-milter exited with %d:\n%s"
                                 % (self.proc.returncode, self.output()))
        return poke(self.path)

    def output(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, remove_dir=True):
        """Stops the daemon; returns its exit status (SIGKILL after 15 s)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        if remove_dir:
            shutil.rmtree(self.sockdir, ignore_errors=True)
        return self.proc.returncode


def poke(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(0.5)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def run_lua(script, address, timeout=30, **defines):
    """Runs tests/milter/SCRIPT with miltertest; returns (rc, stdout, stderr)."""
    args = ["miltertest", "-D", "sock=" + address, "-D", "dir=" + LUA_DIR]
    for k, v in defines.items():
        args += ["-D", "%s=%s" % (k, v)]
    args += ["-s", os.path.join(LUA_DIR, script)]
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr
