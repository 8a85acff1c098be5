"""Change detection (lib/source.c): saslgatectl's commits bump policy.notice
and are seen by the very next request; a write by another tool is seen within
the once-a-second data_version check; a missing notice file falls back to a
data_version check on every request."""
import os
import time

import itertools

from policyd_util import BLOCK_REPLY, DUNNO, Policyd, _sql_write, add_exception, init_store

_instances = itertools.count(1)


def new_instance():
    return "notice.%d.%d" % (os.getpid(), next(_instances))


def test_saslgatectl_commit_bumps_the_notice(tmp_path):
    store = str(tmp_path / "store")
    init_store(store)
    notice = os.path.join(store, "policy.notice")
    before = open(notice, "rb").read()
    assert len(before) == 8
    add_exception(store, user="alice@example.com")
    after = open(notice, "rb").read()
    assert int.from_bytes(after, "big") > int.from_bytes(before, "big")


def test_a_write_by_another_tool_is_seen_within_seconds(tmp_path):
    store = str(tmp_path / "store")
    init_store(store)
    d = Policyd(tmp_path, store)
    try:
        with d.client() as c:
            assert c.ask(instance=new_instance()) == BLOCK_REPLY
            _sql_write(store, "UPDATE policies SET state = 'off'")
            deadline = time.monotonic() + 5
            while c.ask(instance=new_instance()) != DUNNO:
                assert time.monotonic() < deadline, "change not picked up"
                time.sleep(0.1)
    finally:
        assert d.stop() == 0


def test_without_a_notice_file_every_request_checks(tmp_path):
    store = str(tmp_path / "store")
    init_store(store)
    os.unlink(os.path.join(store, "policy.notice"))
    d = Policyd(tmp_path, store)
    try:
        with d.client() as c:
            assert c.ask(instance=new_instance()) == BLOCK_REPLY
            # A direct write does not bump a notice, and there is none to read:
            # the daemon asks SQLite itself, so the next request sees it.
            _sql_write(store, "UPDATE policies SET state = 'off'")
            assert c.ask(instance=new_instance()) == DUNNO
    finally:
        assert d.stop() == 0
