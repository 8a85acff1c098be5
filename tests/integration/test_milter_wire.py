"""saslgate-milter at the wire level (tests/integration/milter_wire.py): the
negotiation, exact replies, concurrency, policy changes mid-connection,
clients that misbehave, and a store that breaks while the daemon runs."""

import json
import os
import signal
import struct
import threading
import time

import pytest

from milter_util import (MILTER, Milter, activity_rows, add_exception, create_store,
                         store_write, wait_for, ctl)
from milter_wire import (SMFIC_CONNECT, SMFIC_MAIL, SMFIF_SETSYMLIST, SMFIM_CONNECT,
                         SMFIM_ENVFROM, SMFIP_NOBODY, SMFIP_NOCONNECT, SMFIP_NODATA,
                         SMFIP_NOEOH, SMFIP_NOHDRS, SMFIP_NOHELO, SMFIP_NOMAIL, SMFIP_NORCPT,
                         SMFIP_NOUNKNOWN, SMFIR_ACCEPT, SMFIR_CONTINUE, SMFIR_REPLYCODE,
                         MilterClient, pack, reply_text, session)

pytestmark = pytest.mark.skipif(not os.path.exists(MILTER), reason="saslgate-milter not built")

PLAIN = {"i": "Q1", "{auth_type}": "PLAIN", "{auth_authen}": "alice@example.test"}
XOAUTH2 = {"i": "Q2", "{auth_type}": "XOAUTH2", "{auth_authen}": "alice@example.test"}
BLOCK_REPLY = ("550 5.7.9 Authentication mechanism PLAIN is not allowed; "
               "use OAuth2 (XOAUTH2/OAUTHBEARER)")


@pytest.fixture
def store(tmp_path):
    d = str(tmp_path / "store")
    create_store(d)
    return d


@pytest.fixture
def milter(store):
    m = Milter(store)
    yield m
    status = m.stop()
    assert status == 0, "saslgate-milter exit status %s:\n%s" % (status, m.output())


def serves(m):
    """The daemon still answers a complete session correctly."""
    cmd, data = session(m.address, PLAIN)
    assert (cmd, reply_text(data)) == (SMFIR_REPLYCODE, BLOCK_REPLY)
    assert m.alive()


def test_negotiation(milter):
    with MilterClient(milter.address) as c:
        n = c.optneg()
        assert n.version == 6
        assert n.actions == SMFIF_SETSYMLIST
        off = (SMFIP_NOHELO | SMFIP_NORCPT | SMFIP_NOBODY | SMFIP_NOHDRS | SMFIP_NOEOH
               | SMFIP_NOUNKNOWN | SMFIP_NODATA)
        assert n.protocol & off == off
        assert not n.protocol & (SMFIP_NOCONNECT | SMFIP_NOMAIL)
        assert set(n.macros[SMFIM_CONNECT]) == {"{daemon_name}", "{daemon_port}",
                                                "{client_addr}"}
        assert set(n.macros[SMFIM_ENVFROM]) >= {"i", "{auth_type}", "{auth_authen}",
                                                "{tls_version}"}
        c.quit()


def test_negotiation_without_setsymlist(milter):
    """An MTA that cannot take macro lists still gets a working filter."""
    with MilterClient(milter.address) as c:
        n = c.optneg(actions=0)
        assert n.actions == 0 and n.macros == {}
        assert c.connect()[0] == SMFIR_CONTINUE
        cmd, data = c.mail(macros=PLAIN)
        assert (cmd, reply_text(data)) == (SMFIR_REPLYCODE, BLOCK_REPLY)


def test_exact_block_reply(milter):
    cmd, data = session(milter.address, PLAIN)
    assert cmd == SMFIR_REPLYCODE
    assert reply_text(data) == BLOCK_REPLY
    cmd, _ = session(milter.address, XOAUTH2)
    assert cmd == SMFIR_ACCEPT
    cmd, _ = session(milter.address, {"i": "Q3"})
    assert cmd == SMFIR_CONTINUE


def test_percent_in_reply_is_escaped(store):
    store_write(store, "UPDATE policies SET reply_text = ? WHERE name = 'block-legacy'",
                ("100% no %m here",))
    m = Milter(store)
    try:
        cmd, data = session(m.address, PLAIN)
        assert (cmd, reply_text(data)) == (SMFIR_REPLYCODE, "550 5.7.9 100%% no PLAIN here")
    finally:
        assert m.stop() == 0


def test_tempfail_class_reply(store):
    store_write(store, "UPDATE policies SET reply_code = '450', reply_enh = '4.7.9', "
                "reply_text = 'later' WHERE name = 'block-legacy'")
    m = Milter(store)
    try:
        cmd, data = session(m.address, PLAIN)
        assert (cmd, reply_text(data)) == (SMFIR_REPLYCODE, "450 4.7.9 later")
    finally:
        assert m.stop() == 0


def test_200_concurrent_sessions(milter):
    n = 200
    barrier = threading.Barrier(n)
    results = [None] * n
    errors = []

    def one(i):
        try:
            macros = dict(PLAIN if i % 2 else XOAUTH2)
            macros["i"] = "C%03d" % i
            with MilterClient(milter.address, timeout=30) as c:
                c.optneg()
                barrier.wait(timeout=30)
                assert c.connect(addr="198.51.100.%d" % (i % 250 + 1))[0] == SMFIR_CONTINUE
                results[i] = c.mail(macros=macros)
                c.quit()
        except Exception as e:  # reported below with the session number
            errors.append((i, repr(e)))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:5]
    for i, (cmd, data) in enumerate(results):
        if i % 2:
            assert (cmd, reply_text(data)) == (SMFIR_REPLYCODE, BLOCK_REPLY), i
        else:
            assert cmd == SMFIR_ACCEPT, i
    rows = wait_for(lambda: (lambda r: r if r[0][0] >= n else None)(
        activity_rows(milter.store_dir,
                      "SELECT count(*) FROM decisions WHERE queue_id LIKE 'C%'")),
        what="200 decision rows")
    assert rows[0][0] == n
    serves(milter)


def test_burst_of_connections_waits_in_the_listen_queue(milter):
    """Postfix connects to a milter's UNIX socket without blocking: when the
    listen queue is full, connect() fails at once (EAGAIN) and the message
    gets milter_default_action. 300 connections opened while the filter
    cannot accept (stopped) must all wait in the queue and then be served."""
    n = 300
    clients = []
    os.kill(milter.proc.pid, signal.SIGSTOP)
    try:
        for _ in range(n):
            clients.append(MilterClient(milter.address, timeout=30))
    finally:
        os.kill(milter.proc.pid, signal.SIGCONT)
    try:
        for i, c in enumerate(clients):
            c.optneg()
            assert c.connect(addr="198.51.100.%d" % (i % 250 + 1))[0] == SMFIR_CONTINUE
            cmd, data = c.mail(macros=dict(PLAIN, i="B%03d" % i))
            assert (cmd, reply_text(data)) == (SMFIR_REPLYCODE, BLOCK_REPLY), i
            c.quit()
    finally:
        for c in clients:
            c.close()
    serves(milter)


def thread_stacks(pid, kib):
    """Thread stacks of exactly kib KiB in the process: a read-write
    anonymous mapping of that size right above its guard page."""
    n, guard_end = 0, None
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            fields = line.split()
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            anonymous = len(fields) == 5
            if (anonymous and fields[1] == "rw-p" and lo == guard_end
                    and hi - lo == kib * 1024):
                n += 1
            guard_end = hi if anonymous and fields[1] == "---p" else None
    return n


@pytest.mark.parametrize("kib", [None, 96])
def test_connection_threads_get_the_configured_stack(store, kib):
    """libmilter's threads (Debian's libmilter keeps a pool of workers that
    grows and shrinks with the connections) are started with the default
    attributes; milter_thread_stack (default 256 KiB) sizes them, so that
    glibc can reuse their stacks instead of mapping 8 MiB for each. Also
    proves that such a stack is enough for deciding and for a rebuild."""
    size = kib or 256
    m = Milter(store, extra_args=["-o", "milter_thread_stack=%d" % size] if kib else [])
    clients = []
    try:
        for i in range(8):
            c = MilterClient(m.address, timeout=30)
            clients.append(c)
            c.optneg()
            assert c.connect(addr="198.51.100.%d" % (i + 1))[0] == SMFIR_CONTINUE
        assert thread_stacks(m.proc.pid, size) >= 1
        add_exception(store, user="alice@example.test")  # the next MAIL rebuilds
        for c in clients:
            assert c.mail(macros=PLAIN)[0] == SMFIR_ACCEPT
            c.quit()
    finally:
        for c in clients:
            c.close()
        status = m.stop()
    assert status == 0, m.output()


def test_policy_change_between_two_mails(store, milter):
    carol = {"i": "P1", "{auth_type}": "PLAIN", "{auth_authen}": "carol@example.test"}
    with MilterClient(milter.address) as c:
        c.optneg()
        assert c.connect()[0] == SMFIR_CONTINUE
        cmd, _ = c.mail("<carol@example.test>", macros=carol)
        assert cmd == SMFIR_REPLYCODE
        c.abort()
        add_exception(store, user="carol@example.test", reason="changed mid-session")
        # The first MAIL after the commit is decided by the new policy.
        carol["i"] = "P2"
        cmd, _ = c.mail("<carol@example.test>", macros=carol)
        assert cmd == SMFIR_ACCEPT
        c.abort()
        for exc in json.loads(ctl(store, "--json", "exception", "list", "--all")):
            ctl(store, "exception", "remove", str(exc["id"]))
        carol["i"] = "P3"
        cmd, _ = c.mail("<carol@example.test>", macros=carol)
        assert cmd == SMFIR_REPLYCODE
        c.quit()


def test_client_vanishes_mid_session(milter):
    # Gone after CONNECT, in the middle of a packet, and in the middle of a
    # length prefix.
    c = MilterClient(milter.address)
    c.optneg()
    c.connect()
    c.close()
    c = MilterClient(milter.address)
    c.optneg()
    c.connect()
    c.sock.sendall(struct.pack(">I", 200) + SMFIC_MAIL + b"<half")
    c.close()
    c = MilterClient(milter.address)
    c.sock.sendall(b"\0\0")
    c.close()
    c = MilterClient(milter.address)
    c.optneg()
    c.sock.sendall(pack(b"D", SMFIC_CONNECT + b"{daemon_name}\0submission"))  # no NUL
    c.close()
    serves(milter)


def test_session_without_quit(milter):
    idle = []
    for _ in range(5):
        c = MilterClient(milter.address)
        c.optneg()
        c.connect()
        assert c.mail(macros=PLAIN)[0] == SMFIR_REPLYCODE
        idle.append(c)  # never QUIT, kept open
    serves(milter)
    for c in idle:
        c.close()  # and then vanish without QUIT
    serves(milter)


def test_garbage_is_survived(milter):
    # An unknown command and a MAIL before negotiation are answered or end the
    # session; the daemon serves on.
    with MilterClient(milter.address, timeout=5) as c:
        c.sock.sendall(pack(b"Z", b"nonsense"))
        assert c.sock.recv(100) == b""
    with MilterClient(milter.address, timeout=5) as c:
        c.sock.sendall(pack(SMFIC_MAIL, b"<a@b>\0"))
        assert c.recv()[0] == SMFIR_CONTINUE
    # Half a packet header: the session waits for the rest, up to milter_timeout.
    for junk in (b"\xff\xff\xff\xff", struct.pack(">I", 0)):
        with MilterClient(milter.address, timeout=5) as c:
            c.sock.sendall(junk)
    serves(milter)


def test_stalled_client_dropped_after_timeout(store):
    m = Milter(store, extra_args=["-o", "milter_timeout=1s"])
    try:
        with MilterClient(m.address, timeout=10) as c:
            c.optneg()
            c.sock.sendall(struct.pack(">I", 100) + SMFIC_MAIL)  # never completed
            start = time.monotonic()
            assert c.sock.recv(100) == b""
            assert time.monotonic() - start < 5
        serves(m)
    finally:
        assert m.stop() == 0


def heartbeat(store_dir):
    rows = activity_rows(store_dir, "SELECT degraded, degraded_reason, generation FROM "
                         "heartbeats WHERE program = 'milter' ORDER BY last_seen DESC")
    return rows[0] if rows else None


@pytest.mark.parametrize("damage", ["remove", "corrupt"])
def test_store_broken_while_running(store, milter, damage):
    serves(milter)
    wait_for(lambda: heartbeat(store) is not None and heartbeat(store)[0] == 0,
             what="a healthy heartbeat")
    path = os.path.join(store, "policy.db")
    if damage == "remove":
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.unlink(path + suffix)
    else:
        with open(path, "r+b") as f:
            f.write(b"this is not an SQLite database" * 200)
        # A committed change elsewhere would make the daemon look again; bump
        # the WAL's neighbour files too so that nothing stale hides the damage.
        for suffix in ("-wal", "-shm"):
            if os.path.exists(path + suffix):
                with open(path + suffix, "r+b") as f:
                    f.write(b"\xff" * 64)
    # The last good policy stays in service ...
    serves(milter)
    cmd, _ = session(milter.address, XOAUTH2)
    assert cmd == SMFIR_ACCEPT
    # ... and the heartbeat reports the daemon degraded.
    hb = wait_for(lambda: (lambda h: h if h and h[0] == 1 else None)(heartbeat(store)),
                  timeout=15, what="a degraded heartbeat")
    assert hb[1]
    serves(milter)


def test_many_messages_on_one_connection(milter):
    with MilterClient(milter.address) as c:
        c.optneg()
        c.connect()
        start = time.monotonic()
        for i in range(200):
            macros = dict(PLAIN if i % 2 else XOAUTH2)
            macros["i"] = "M%03d" % i
            cmd, _ = c.mail(macros=macros)
            assert cmd == (SMFIR_REPLYCODE if i % 2 else SMFIR_ACCEPT)
            c.abort()
        assert time.monotonic() - start < 10
        c.quit()
