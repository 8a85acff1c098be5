"""Fault tests (issue 7): a store directory that cannot be written, policy.db
locked by a long admin transaction, activity.db on a full or read-only disk,
and SIGKILL in the middle of an activity flush.

What works as root in CI decides the technique: a read-only bind mount or a
small tmpfs needs CAP_SYS_ADMIN (a privileged container); without it the
read-only case falls back to "chattr +i" and the full disk to RLIMIT_FSIZE
(with SIGXFSZ ignored, so that writes fail with EFBIG as they would with
ENOSPC). File modes alone prove nothing as root (root ignores them); the
unwritable-by-the-daemon-user case is in test_privileges.py.
"""

import contextlib
import os
import random
import resource
import signal
import sqlite3
import subprocess
import threading
import time

import pytest

from milter_util import MILTER, Milter
from milter_wire import SMFIR_REPLYCODE, reply_text, session
from policyd_util import (BLOCK_REPLY, CTL, DUNNO, POLICYD, Policyd, activity_rows,
                          init_store, wait_for)

pytestmark = pytest.mark.skipif(not (os.access(POLICYD, os.X_OK) and os.access(CTL, os.X_OK)),
                                reason="the programs are not built")

MAX_LATENCY = 1.0  # seconds; Postfix waits smtpd_policy_service_timeout (100 s)


def instance():
    return "%x.%x.0" % (os.getpid(), random.getrandbits(48))


def ctl(store_dir, *args):
    return subprocess.run([CTL, "-d", str(store_dir)] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=60)


def timed_ask(client, **overrides):
    start = time.monotonic()
    reply = client.ask(instance=instance(), **overrides)
    return reply, time.monotonic() - start


def heartbeat(store_dir, pid):
    rows = activity_rows(store_dir, "SELECT requests, dropped FROM heartbeats WHERE pid = ?",
                         (pid,))
    return rows[0] if rows else None


def _mount(*args):
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount"] + list(args), capture_output=True).returncode == 0


def _umount(path):
    subprocess.run(["umount", path], capture_output=True)
    if os.path.ismount(path):
        subprocess.run(["umount", "-l", path], capture_output=True)


@contextlib.contextmanager
def tmpfs(path, size):
    """A tmpfs of size at path; yields False if it cannot be mounted here."""
    os.makedirs(path, exist_ok=True)
    if not _mount("-t", "tmpfs", "-o", "size=%s,mode=0750" % size, "tmpfs", str(path)):
        yield False
        return
    try:
        yield True
    finally:
        _umount(str(path))


@contextlib.contextmanager
def read_only_view(src, dst):
    """dst shows the directory src read-only: a read-only bind mount, else src
    itself made immutable (chattr +i; dst is then src). Yields the path, or
    None if neither works here."""
    os.makedirs(dst, exist_ok=True)
    if _mount("--bind", str(src), str(dst)):
        if _mount("-o", "remount,ro,bind", str(dst)):
            try:
                yield str(dst)
            finally:
                _umount(str(dst))
            return
        _umount(str(dst))
    if os.geteuid() == 0 and subprocess.run(["chattr", "+i", str(src)],
                                            capture_output=True).returncode == 0:
        try:
            yield str(src)
        finally:
            subprocess.run(["chattr", "-i", str(src)], capture_output=True)
        return
    yield None


# --- the store directory cannot be written --------------------------------------------


def test_read_only_store_directory(tmp_path):
    """As root, only the file system can refuse: saslgatectl and both daemons
    fail with a message that names the directory, and the store is unchanged."""
    store = init_store(tmp_path / "store")
    before = open(os.path.join(store, "policy.db"), "rb").read()
    with read_only_view(store, tmp_path / "ro") as ro:
        if ro is None:
            pytest.skip("neither a read-only bind mount nor chattr +i is possible here")
        r = ctl(ro, "exception", "add", "--user", "x@example.com", "--permanent",
                "--reason", "must not be stored")
        assert r.returncode == 1
        assert "store directory %s is" % ro in r.stderr, r.stderr
        assert "policy.db-wal" in r.stderr
        r = subprocess.run([POLICYD, "-f", "-d", ro, "-l", "unix:%s" % (tmp_path / "p.sock")],
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 1 and ("store directory %s" % ro) in r.stderr, r.stderr
        if os.access(MILTER, os.X_OK):
            r = subprocess.run([MILTER, "-f", "-d", ro, "-p", "unix:%s" % (tmp_path / "m.sock")],
                               capture_output=True, text=True, timeout=20)
            assert r.returncode == 1 and ("store directory %s" % ro) in r.stderr, r.stderr
    assert open(os.path.join(store, "policy.db"), "rb").read() == before
    assert not os.path.exists(os.path.join(store, "activity.db"))
    assert ctl(store, "check").returncode == 0


# --- policy.db locked by a long admin transaction -------------------------------------


class AdminLock:
    """A sqlite3 connection that holds BEGIN EXCLUSIVE on policy.db with an
    uncommitted change (an exception for alice), as a long import would."""

    def __init__(self, store_dir):
        self.db = sqlite3.connect(os.path.join(str(store_dir), "policy.db"), timeout=5,
                                  isolation_level=None)
        self.db.execute("BEGIN EXCLUSIVE")
        self.db.execute("INSERT INTO exceptions (policy, user_pattern, reason, created_by, "
                        "created_at) VALUES (NULL, 'alice@example.com', 'lock test', 'test', "
                        "strftime('%s'))")
        self.db.execute("UPDATE settings SET value = CAST(value AS INTEGER) + 1 "
                        "WHERE key = 'generation'")

    def commit(self):
        self.db.execute("COMMIT")
        self.db.close()


LOCK_SECONDS = 3.0


def test_policy_db_locked_policyd_answers_from_snapshot(tmp_path):
    store = init_store(tmp_path / "store")
    d = Policyd(tmp_path, store)
    try:
        with d.client() as c:
            assert c.ask(instance=instance()) == BLOCK_REPLY
            lock = AdminLock(store)
            # A writer's lock must not be a reader's wait: the whole locked
            # period, every answer comes at once, from the last committed policy.
            worst, n, end = 0.0, 0, time.monotonic() + LOCK_SECONDS
            while time.monotonic() < end:
                reply, took = timed_ask(c)
                assert reply == BLOCK_REPLY
                worst, n = max(worst, took), n + 1
                time.sleep(0.05)
            assert worst < MAX_LATENCY, "slowest answer %.3f s" % worst
            assert n >= 20
            lock.commit()
            # A commit by another tool than saslgatectl (which also bumps
            # policy.notice) is seen within a second (lib/source.c).
            assert wait_for(lambda: c.ask(instance=instance()) == DUNNO, timeout=3,
                            interval=0.1)
        assert d.stop() == 0
    finally:
        d.kill()


@pytest.mark.skipif(not os.access(MILTER, os.X_OK), reason="saslgate-milter is not built")
def test_policy_db_locked_milter_answers_from_snapshot(tmp_path):
    store = init_store(tmp_path / "store")
    plain = {"i": "Q1", "{auth_type}": "PLAIN", "{auth_authen}": "alice@example.com"}
    m = Milter(store)
    try:
        cmd, data = session(m.address, plain)
        assert cmd == SMFIR_REPLYCODE
        lock = AdminLock(store)
        worst, n, end = 0.0, 0, time.monotonic() + LOCK_SECONDS
        while time.monotonic() < end:
            start = time.monotonic()
            cmd, data = session(m.address, plain, timeout=MAX_LATENCY * 5)
            took = time.monotonic() - start
            assert cmd == SMFIR_REPLYCODE and reply_text(data).startswith("550 5.7.9 ")
            worst, n = max(worst, took), n + 1
            time.sleep(0.05)
        assert worst < MAX_LATENCY, "slowest session %.3f s" % worst
        assert n >= 20
        lock.commit()
        # The exception is in force within a second: no longer rejected.
        assert wait_for(lambda: session(m.address, plain)[0] != SMFIR_REPLYCODE, timeout=3,
                        interval=0.1)
    finally:
        assert m.stop() == 0, m.output()


# --- activity.db on a full disk --------------------------------------------------------


def _fill(path):
    """Writes path until the file system is full."""
    block = b"\0" * 65536
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(block)
        except OSError:
            pass
    # Whatever is left is smaller than a block: take it byte-wise.
    with open(path, "ab", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 512)
        except OSError:
            pass


def _full_disk_requests(d, store):
    """Requests while activity.db cannot grow: answered, fast, correctly."""
    with d.client() as c:
        for i in range(300):
            reply, took = timed_ask(c, sasl_username="user%d@example.com" % i)
            assert reply == BLOCK_REPLY and took < MAX_LATENCY
        assert c.ask(instance=instance(), sasl_method="XOAUTH2") == DUNNO


def test_activity_db_full_disk_tmpfs(tmp_path):
    store = tmp_path / "store"
    with tmpfs(store, "2m") as mounted:
        if not mounted:
            pytest.skip("cannot mount a tmpfs here (the RLIMIT_FSIZE variant runs instead)")
        init_store(store)
        d = Policyd(tmp_path, store, settings={"activity_flush_ms": "10",
                                                "heartbeat_interval": "1s"})
        filler = store / "filler"
        try:
            with d.client() as c:
                assert c.ask(instance=instance()) == BLOCK_REPLY
            assert wait_for(lambda: heartbeat(store, d.pid))
            _fill(filler)
            _full_disk_requests(d, store)
            d.wait_log("decision records lost so far")
            # Space again: the writer recovers and the heartbeat counts the loss.
            os.unlink(filler)
            assert wait_for(lambda: (heartbeat(store, d.pid) or (0, 0))[1] > 0, timeout=15), \
                d.log_text()
            assert d.stop() == 0
        finally:
            d.kill()
            if filler.exists():
                filler.unlink()
        assert ctl(store, "check").returncode == 0
        integrity = activity_rows(store, "PRAGMA integrity_check")
        assert integrity == [("ok",)]


def test_activity_db_file_size_limit(tmp_path):
    """The same without a mount: RLIMIT_FSIZE stops activity.db-wal from
    growing (EFBIG; SIGXFSZ is ignored, as a daemon must not die of it)."""
    store = init_store(tmp_path / "store")
    limit = 256 * 1024

    def limited():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    real_popen = subprocess.Popen

    def popen(args, **kw):
        return real_popen(args, preexec_fn=limited, **kw)

    subprocess.Popen = popen
    try:
        d = Policyd(tmp_path, store, settings={"activity_flush_ms": "10",
                                                "heartbeat_interval": "1s"})
    finally:
        subprocess.Popen = real_popen
    try:
        with d.client() as c:
            # Long user names fill the WAL past the limit quickly.
            for i in range(600):
                reply, took = timed_ask(c, sasl_username="u%d-%s@example.com" % (i, "x" * 200))
                assert reply == BLOCK_REPLY and took < MAX_LATENCY
        d.wait_log("decision records lost so far")
        assert d.proc.poll() is None
        assert d.stop() == 0
    finally:
        d.kill()
    logged = [line for line in d.log_text().splitlines() if "activity.db" in line and
              ("error" in line or "warning" in line)]
    assert logged, d.log_text()
    assert ctl(store, "check").returncode == 0


# --- SIGKILL in the middle of an activity flush ----------------------------------------


def committed_instances(store_dir):
    try:
        return {r[0] for r in activity_rows(store_dir, "SELECT instance FROM decisions")}
    except sqlite3.OperationalError:
        return set()


def _hammer(d, stop, sent, lock):
    """Requests as fast as one connection goes, until stop is set or the
    daemon dies; records the instances sent."""
    try:
        with d.client(timeout=5) as c:
            while not stop.is_set():
                inst = instance()
                with lock:
                    sent.add(inst)
                if not c.ask(instance=inst, sasl_username="k%d@example.com" %
                             random.randrange(1000)):
                    return
    except OSError:
        return


def record_one_decision(tmp_path, store):
    """A daemon decides one request, commits its row and stops cleanly."""
    d = Policyd(tmp_path, store, settings={"activity_flush_ms": "10"})
    try:
        inst = instance()
        with d.client() as c:
            assert c.ask(instance=inst) == BLOCK_REPLY
        assert wait_for(lambda: inst in committed_instances(store))
        assert d.stop() == 0
    finally:
        d.kill()


def test_sigkill_during_activity_flush_loses_nothing_committed(tmp_path):
    store = init_store(tmp_path / "store")
    sent, lock = set(), threading.Lock()
    for _ in range(3):
        d = Policyd(tmp_path, store, settings={"activity_flush_ms": "10"})
        stop = threading.Event()
        threads = [threading.Thread(target=_hammer, args=(d, stop, sent, lock))
                   for _ in range(4)]
        for t in threads:
            t.start()
        # Four clients at full speed keep the writer flushing batch after
        # batch; kill it once rows are being committed.
        before = len(committed_instances(store))
        assert wait_for(lambda: len(committed_instances(store)) > before + 200, timeout=20)
        time.sleep(random.uniform(0.0, 0.05))
        committed = committed_instances(store)  # what another reader saw committed
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
        stop.set()
        for t in threads:
            t.join(10)
        d.kill()
        after = committed_instances(store)
        assert committed <= after, "%d committed decision rows lost" % len(committed - after)
        with lock:
            assert after <= sent  # and nothing that was never sent
    r = ctl(store, "check")
    assert r.returncode == 0, r.stdout + r.stderr
    assert activity_rows(store, "PRAGMA integrity_check") == [("ok",)]
    # A restarted daemon records on top of what survived.
    record_one_decision(tmp_path, store)


def test_check_covers_activity_db(tmp_path):
    """saslgatectl check, the test after a crash, also looks at activity.db."""
    store = init_store(tmp_path / "store")
    assert "activity.db:    not created yet" in ctl(store, "check").stdout
    record_one_decision(tmp_path, store)
    r = ctl(store, "check")
    assert r.returncode == 0 and "activity.db:    ok" in r.stdout, r.stdout + r.stderr
    # Damage the decision table's pages (not the header): check must say so.
    path = os.path.join(store, "activity.db")
    size = os.path.getsize(path)
    assert size >= 4 * 4096
    with open(path, "r+b") as f:
        f.seek(2 * 4096)
        f.write(os.urandom(size - 2 * 4096))
    r = ctl(store, "--json", "check")
    assert r.returncode == 1, r.stdout + r.stderr
    assert '"activity_integrity": false' in r.stdout and '"ok": false' in r.stdout
