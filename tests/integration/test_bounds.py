"""Resource bounds of saslgate-policyd (issue 7): 1,000 idle connections, then
1,000 hostile ones (oversized lines, binary garbage, lines without "=",
requests held open just under max_request_bytes); the daemon's RSS stays
bounded and a normal request on a new connection is still answered.

The RSS figures are printed (pytest -s shows them) and recorded in
SECURITY.md. Under AddressSanitizer (make asan-check) RSS measures ASan's
shadow memory and quarantine, not the daemon: there the RSS assertions are
skipped, everything else is checked.
"""

import os
import resource
import socket
import time

import pytest

from policyd_util import BLOCK_REPLY, POLICYD, Policyd, init_store, postfix_request

pytestmark = pytest.mark.skipif(not os.access(POLICYD, os.X_OK),
                                reason="saslgate-policyd is not built")

N = 1000
MAX_REQUEST_BYTES = 32768  # the default; held-open requests stop just below it
KB = 1024


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.skip("RLIMIT_NOFILE hard limit %d < %d" % (hard, need))
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    return s


def hostile_payload(i):
    """Four kinds, in turn. Returns (bytes, the daemon must close it)."""
    kind = i % 4
    if kind == 0:  # one line far over max_line_bytes
        return b"sasl_username=" + b"x" * 20000 + b"\n", True
    if kind == 1:  # binary garbage with NULs
        return bytes((i * 7 + k * 13) % 256 for k in range(4096)), True
    if kind == 2:  # a line without "="
        return b"this is not an attribute\n", True
    # A request that never ends, just under max_request_bytes: the most
    # memory a client can make the daemon hold.
    # Distinct attributes the parser keeps (a repeated one replaces its value).
    out = b""
    for name, _ in postfix_request():
        line = name.encode() + b"=" + b"y" * 1000 + b"\n"
        if len(out) + len(line) > MAX_REQUEST_BYTES - 1024:
            break
        out += line
    return out, False


def closed_by_peer(s, timeout=10.0):
    s.settimeout(timeout)
    try:
        while True:
            data = s.recv(65536)
            if not data:
                return True
            # The protocol rule: a violation gets no reply.
            raise AssertionError("reply to a hostile request: %r" % data[:80])
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def hostile_round(d, hostile):
    """Opens N hostile connections (appended to hostile); checks that the
    daemon closed every one it must close; returns those it keeps."""
    for i in range(N):
        s = connect(d.socket_path)
        data, closes = hostile_payload(i)
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed while we were still sending: that is the point
        hostile.append((s, closes))
    keep = []
    for s, closes in hostile:
        if closes:
            assert closed_by_peer(s), "a hostile connection was left open"
        else:
            keep.append(s)
    return keep


def answered(d):
    with d.client() as c:
        return c.ask() == BLOCK_REPLY


def settle_rss(d, seconds=0.5):
    time.sleep(seconds)
    return d.rss_kb()


def test_idle_then_hostile_connections_bounded(tmp_path):
    raise_nofile(2 * N + 256)
    store = init_store(tmp_path / "store")
    d = Policyd(tmp_path, store, settings={"max_connections": str(2 * N + 50)})
    idle, hostile = [], []
    try:
        sanitized = d.sanitized()
        assert answered(d)
        base = settle_rss(d)

        for _ in range(N):
            idle.append(connect(d.socket_path))
        assert answered(d)
        after_idle = settle_rss(d)

        keep = hostile_round(d, hostile)
        assert answered(d)
        after_hostile = settle_rss(d)
        # Again, after the first thousand are gone: nothing accumulates.
        for s, _ in hostile:
            s.close()
        hostile = []
        keep = hostile_round(d, hostile)
        assert answered(d)
        after_second = settle_rss(d)

        for s in idle + [s for s, _ in hostile]:
            s.close()
        idle, hostile = [], []
        time.sleep(0.5)
        assert answered(d)
        after_close = settle_rss(d)
        assert d.proc.poll() is None

        held = len(hostile_payload(3)[0]) // KB
        print("\npolicyd RSS: start %d KiB, +%d idle %d KiB, +%d hostile (%d held at "
              "%d KiB each) %d KiB, all closed %d KiB%s" %
              (base, N, after_idle, N, len(keep), held,
               after_hostile, after_close, " (ASan: not asserted)" if sanitized else ""))
        print("policyd RSS after a second round of %d hostile connections: %d KiB" %
              (N, after_second))
        if not sanitized:
            # An idle connection costs a bufferevent and a parser: a few KiB.
            assert after_idle - base < N * 16, (base, after_idle)
            # A held request costs at most what it sent (values of known
            # attributes, line buffers): bounded by max_request_bytes each.
            assert after_hostile - base < N * 16 + len(keep) * 2 * MAX_REQUEST_BYTES // KB, \
                (base, after_hostile)
            assert after_second - after_hostile < 2 * KB, (after_hostile, after_second)
        assert d.stop() == 0
    finally:
        for s in idle + [s for s, _ in hostile]:
            s.close()
        d.kill()


def test_connection_limit_closes_the_longest_waiting_to_admit_new_ones(tmp_path):
    """At max_connections a new client is admitted and the connection idle
    the longest is closed for it: a flood of idle connections costs only
    themselves, and the newest ones are served."""
    raise_nofile(400)
    store = init_store(tmp_path / "store")
    d = Policyd(tmp_path, store, settings={"max_connections": "100"})
    conns = []
    try:
        for _ in range(150):
            conns.append(connect(d.socket_path))
        time.sleep(0.3)
        closed = sum(closed_by_peer(s, timeout=0.5) for s in conns[:50])
        assert closed == 50  # the 50 oldest made room for the 50 newest
        assert answered(d)  # and the next one gets in too
        d.wait_log("max_connections=100 reached: closed")
        for s in conns:
            s.close()
        conns = []
        assert d.stop() == 0
    finally:
        for s in conns:
            s.close()
        d.kill()


def test_half_requests_cannot_lock_the_mta_out(tmp_path):
    """1,000 connections (max_connections) that each send half a request: a
    real request on a new connection is still answered, and the half ones
    are closed once request_timeout has passed."""
    raise_nofile(2300)
    store = init_store(tmp_path / "store")
    d = Policyd(tmp_path, store, settings={"request_timeout": "2s"})
    half = []
    try:
        for i in range(1000):
            s = connect(d.socket_path)
            s.sendall(b"request=smtpd_access_policy\nprotocol_state=RCPT\nsasl_method=PL")
            half.append(s)
        time.sleep(0.5)
        started = time.monotonic()
        assert answered(d)
        assert time.monotonic() - started < 5
        # The rest time out: closed within request_timeout plus the sweep.
        deadline = time.monotonic() + 10
        open_ones = half[-500:]
        while open_ones and time.monotonic() < deadline:
            open_ones = [s for s in open_ones if not closed_by_peer(s, timeout=0.05)]
        assert not open_ones, "%d half requests still open" % len(open_ones)
        d.wait_log("request not complete within request_timeout")
        assert answered(d)
        assert d.stop() == 0
    finally:
        for s in half:
            s.close()
        d.kill()
