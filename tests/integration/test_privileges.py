"""Least privilege: the daemons warn when they would keep running as root, drop
to -u/-g after binding, set socket modes explicitly, hold policy.db read-only
and cannot write it; saslgatectl refuses a world-writable store directory.

Most tests need root (to bind as root and drop to nobody); they are skipped
otherwise. The store lives under a world-searchable temporary directory, since
pytest's tmp_path (/tmp/pytest-of-root, mode 0700) cannot be entered by nobody.
"""

import grp
import os
import pathlib
import pwd
import shutil
import sqlite3
import stat
import subprocess
import tempfile

import pytest

from milter_util import MILTER, Milter, poke
from milter_wire import SMFIR_REPLYCODE, reply_text, session
from policyd_util import (BLOCK_REPLY, CTL, POLICYD, PolicyClient, Policyd, activity_rows,
                          init_store, wait_for)

pytestmark = pytest.mark.skipif(not (os.access(POLICYD, os.X_OK) and os.access(MILTER, os.X_OK)
                                     and os.access(CTL, os.X_OK)),
                                reason="the programs are not built")


def _ids():
    try:
        return pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid
    except KeyError:
        return None


IDS = _ids()
as_root = pytest.mark.skipif(os.geteuid() != 0 or IDS is None,
                             reason="needs root and the user nobody, group nogroup")

MILTER_PLAIN = {"i": "Q1", "{auth_type}": "PLAIN", "{auth_authen}": "alice@example.test"}


@pytest.fixture
def base():
    d = tempfile.mkdtemp(prefix="sgpriv")
    os.chmod(d, 0o755)
    yield pathlib.Path(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def store(base):
    """A store laid out as SECURITY.md recommends: the directory root:GROUP
    1770 (the daemon creates activity.db; the sticky bit stops it from
    replacing root's policy.db), policy.db root 0644."""
    s = init_store(base / "store")
    if IDS is not None and os.geteuid() == 0:
        os.chown(s, 0, IDS[1])
        os.chmod(s, 0o1770)
    return s


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.split()
    return out


def policy_db_fds(pid, store_dir):
    """(fd, flags) of every descriptor the process holds on policy.db itself."""
    target = os.path.join(os.path.realpath(store_dir), "policy.db")
    fds = []
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)) != target:
                continue
            with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
                flags = next(int(line.split()[1], 8) for line in f if line.startswith("flags:"))
        except (FileNotFoundError, StopIteration):
            continue
        fds.append((int(fd), flags))
    return fds


def assert_unprivileged(pid, store_dir):
    uid, gid = IDS
    st = proc_status(pid)
    assert st["Uid"] == [str(uid)] * 4, st["Uid"]  # real, effective, saved, fs
    assert st["Gid"] == [str(gid)] * 4, st["Gid"]
    assert st["Groups"] == [str(gid)], st["Groups"]  # root's groups are gone
    assert int(st["CapEff"][0], 16) == 0 and int(st["CapPrm"][0], 16) == 0
    # policy.db is open read-only (O_ACCMODE of every descriptor is O_RDONLY)...
    fds = policy_db_fds(pid, store_dir)
    assert fds, "the daemon does not hold policy.db open"
    assert all(flags & os.O_ACCMODE == os.O_RDONLY for _, flags in fds), fds
    # ...and with no capability left, the kernel refuses it a writable one:
    # policy.db belongs to root, mode 0644, and the daemon runs as nobody.
    db = os.stat(os.path.join(store_dir, "policy.db"))
    assert db.st_uid == 0 and stat.S_IMODE(db.st_mode) & 0o022 == 0


def open_as_nobody(path, flags):
    """os.open(path, flags) in a child running as nobody:nogroup; the errno or 0."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.setgroups([])
            os.setgid(IDS[1])
            os.setuid(IDS[0])
            os.close(os.open(path, flags))
        except OSError as e:
            code = e.errno or 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


# --- warning when kept as root ---------------------------------------------------


@as_root
def test_policyd_warns_when_running_as_root(base, store):
    d = Policyd(base, store)
    try:
        d.wait_log("running as root; use -u")
    finally:
        d.kill()


@as_root
def test_milter_warns_when_running_as_root(store):
    m = Milter(store)
    try:
        wait_for(lambda: "running as root; use -u" in m.output(), timeout=5)
        assert "running as root; use -u" in m.output()
    finally:
        assert m.stop() == 0


# --- privilege drop, socket modes, read-only policy.db ------------------------------


@as_root
def test_policyd_drops_privileges_after_binding(base, store):
    d = Policyd(base, store, inet=True, extra_args=["-u", "nobody", "-g", "nogroup"],
                settings={"socket_mode": "0640", "socket_group": "nogroup",
                          "activity_flush_ms": "10"})
    try:
        assert "running as root" not in d.log_text()
        assert_unprivileged(d.pid, store)
        # The UNIX socket was made as root with the configured mode and group.
        st = os.stat(d.socket_path)
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o640
        assert (st.st_uid, st.st_gid) == (0, IDS[1])
        with d.client() as c:
            assert c.ask(instance="priv-unix") == BLOCK_REPLY
        with d.inet_client() as c:  # bound before the drop, as a low port would be
            assert c.ask(instance="priv-inet") == BLOCK_REPLY
        # As nobody it still records: activity.db is its own file.
        assert wait_for(lambda: activity_rows(
            store, "SELECT count(*) FROM decisions WHERE instance LIKE 'priv-%'")[0][0] == 2)
        assert os.stat(os.path.join(store, "activity.db")).st_uid == IDS[0]
        # The proof that it cannot write policy.db: what the kernel says to
        # its credentials.
        assert open_as_nobody(os.path.join(store, "policy.db"), os.O_RDWR) == 13  # EACCES
        assert open_as_nobody(os.path.join(store, "policy.db"), os.O_RDONLY) == 0
        assert d.stop() == 0
    finally:
        d.kill()


def wal_owners(store_dir):
    return [os.stat(os.path.join(store_dir, "policy.db" + ext)).st_uid
            for ext in ("-wal", "-shm")]


@as_root
def test_policy_wal_files_stay_saslgatectls(base, store):
    """policy.db-wal and -shm outlive saslgatectl, so a daemon that starts
    later reads root's files instead of making its own, which root would then
    read and checkpoint (SECURITY.md); changes still reach the daemon."""
    subprocess.run([CTL, "-d", store, "policy", "list"], check=True, capture_output=True)
    assert wal_owners(store) == [0, 0]
    d = Policyd(base, store, extra_args=["-u", "nobody", "-g", "nogroup"])
    try:
        with d.client() as c:
            assert c.ask(instance="wal-1") == BLOCK_REPLY
            subprocess.run([CTL, "-d", store, "exception", "add", "--user",
                            "alice@example.com", "--permanent", "--reason", "wal test"],
                           check=True, capture_output=True)
            assert c.ask(instance="wal-2") == b"action=DUNNO\n\n"
        assert d.stop() == 0
    finally:
        d.kill()
    assert wal_owners(store) == [0, 0]
    for ext in ("-wal", "-shm"):
        assert open_as_nobody(os.path.join(store, "policy.db" + ext), os.O_RDWR) == 13


COMPANIONS = ("policy.db-wal", "policy.db-shm", "policy.notice")


def lose_companions(store_dir):
    """What a store looks like after its WAL files went (removed by hand, or
    by another SQLite program that closed last) and before any saslgatectl
    commit: policy.db alone."""
    for name in COMPANIONS:
        os.unlink(os.path.join(store_dir, name))


def daemon_args(program, store_dir, base):
    if program == "policyd":
        return [POLICYD, "-f", "-d", store_dir, "-u", "nobody", "-g", "nogroup",
                "-l", "unix:%s" % (base / "p.sock")]
    return [MILTER, "-f", "-d", store_dir, "-u", "nobody", "-g", "nogroup",
            "-p", "unix:%s" % (base / "m.sock")]


@as_root
@pytest.mark.parametrize("program", ["policyd", "milter"])
def test_daemon_started_first_makes_no_policy_wal_files(base, store, program):
    """A daemon that starts (as nobody, in a directory it may write) while
    policy.db-wal and -shm are missing does not make them: they would be
    nobody's, and saslgatectl (root) would read them. It exits 1 naming the
    fix; once root has made them, it starts and reads them read-only."""
    lose_companions(store)
    r = subprocess.run(daemon_args(program, store, base), capture_output=True, text=True,
                       timeout=20)
    assert r.returncode == 1, r.stderr
    assert "%s/policy.db-wal is missing" % store in r.stderr, r.stderr
    assert 'run "saslgatectl check" as root (uid 0)' in r.stderr, r.stderr
    for name in COMPANIONS:
        assert not os.path.exists(os.path.join(store, name)), name
    assert run_ctl(store, "check").returncode == 0
    assert wal_owners(store) == [0, 0]
    proc = subprocess.Popen(daemon_args(program, store, base), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        sock = base / ("p.sock" if program == "policyd" else "m.sock")
        assert wait_for(lambda: proc.poll() is None and poke(str(sock)), timeout=10), \
            proc.stderr.read() if proc.poll() is not None else "no socket"
        if program == "policyd":
            with PolicyClient(str(sock)) as c:
                assert c.ask(instance="first-1") == BLOCK_REPLY
        else:
            cmd, data = session("unix:%s" % sock, MILTER_PLAIN)
            assert cmd == SMFIR_REPLYCODE and reply_text(data).startswith("550 5.7.9 ")
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert wal_owners(store) == [0, 0]
    for ext in ("-wal", "-shm"):
        assert open_as_nobody(os.path.join(store, "policy.db" + ext), os.O_RDWR) == 13


def forged_wal(store_dir, scratch):
    """A policy.db-wal that switches block-legacy off, as a compromised daemon
    could write it: committed frames against a copy of policy.db, never
    checkpointed (the writer exits without closing)."""
    os.makedirs(scratch)
    shutil.copy(os.path.join(store_dir, "policy.db"), scratch)
    pid = os.fork()
    if pid == 0:
        db = sqlite3.connect(os.path.join(scratch, "policy.db"))
        db.execute("UPDATE policies SET state = 'off' WHERE name = 'block-legacy'")
        db.commit()
        os._exit(0)
    os.waitpid(pid, 0)
    wal = os.path.join(scratch, "policy.db-wal")
    assert os.path.getsize(wal) > 0
    return wal


def block_legacy_state(store_dir):
    db = sqlite3.connect("file:%s/policy.db?mode=ro&immutable=1" % store_dir, uri=True)
    try:
        return db.execute("SELECT state FROM policies WHERE name = 'block-legacy'").fetchone()[0]
    finally:
        db.close()


@as_root
@pytest.mark.parametrize("planted", COMPANIONS)
def test_ctl_refuses_planted_policy_wal_files(base, store, planted):
    """While policy.db's WAL files are missing, the daemon's account can
    create files of those names in the store directory. saslgatectl refuses
    a store whose -wal, -shm or notice belongs to another user than
    policy.db: it says which file and whose, exits 1, and neither reads nor
    checkpoints what is in it (policy.db is unchanged)."""
    wal = forged_wal(store, str(base / "scratch"))
    lose_companions(store)
    before = open(os.path.join(store, "policy.db"), "rb").read()
    target = os.path.join(store, planted)
    if planted == "policy.db-wal":
        shutil.copy(wal, target)
    else:
        open(target, "wb").close()
    os.chown(target, IDS[0], IDS[1])
    for args in (["policy", "list"],
                 ["exception", "add", "--user", "x@example.com", "--permanent",
                  "--reason", "must not be stored"]):
        r = run_ctl(store, *args)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        assert ("%s belongs to nobody (uid %d), not to root (uid 0), the owner of policy.db"
                % (target, IDS[0])) in r.stderr, r.stderr
        assert "refusing to use the store" in r.stderr
    assert open(os.path.join(store, "policy.db"), "rb").read() == before
    assert block_legacy_state(store) == "enforce"
    assert os.stat(target).st_uid == IDS[0]  # left for the administrator to inspect
    # Removed, saslgatectl makes its own, root's, and works again.
    os.unlink(target)
    assert run_ctl(store, "policy", "list").returncode == 0
    assert wal_owners(store) == [0, 0]
    assert block_legacy_state(store) == "enforce"


@as_root
def test_init_refuses_wal_file_planted_before_it(base):
    """The daemon's account got to the empty store directory first."""
    s = str(base / "store")
    os.mkdir(s)
    os.chown(s, 0, IDS[1])
    os.chmod(s, 0o1770)
    wal = os.path.join(s, "policy.db-wal")
    assert open_as_nobody(wal, os.O_WRONLY | os.O_CREAT | os.O_EXCL) == 0
    r = run_ctl(s, "init")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "%s belongs to nobody (uid %d), not to root (uid 0)" % (wal, IDS[0]) in r.stderr
    assert not os.path.exists(os.path.join(s, "policy.db"))
    os.unlink(wal)
    assert run_ctl(s, "init").returncode == 0
    assert wal_owners(s) == [0, 0]


def test_ctl_refuses_notice_that_is_a_symlink(tmp_path):
    s = init_store(tmp_path / "store")
    notice = os.path.join(s, "policy.notice")
    os.unlink(notice)
    os.symlink(str(tmp_path / "elsewhere"), notice)
    r = run_ctl(s, "exception", "add", "--user", "x@example.com", "--permanent",
                "--reason", "must not be stored")
    assert r.returncode == 1
    assert "%s is not a regular file; refusing to use the store" % notice in r.stderr
    assert not (tmp_path / "elsewhere").exists()


@as_root
def test_milter_drops_privileges_after_binding(base, store):
    sock = base / "milter.sock"
    m = Milter(store, path=str(sock),
               extra_args=["-u", "nobody", "-g", "nogroup", "-o", "socket_mode=0660",
                           "-o", "socket_group=nogroup"])
    try:
        cmd, data = session(m.address, MILTER_PLAIN)
        assert cmd == SMFIR_REPLYCODE and reply_text(data).startswith("550 5.7.9 ")
        assert "running as root" not in m.output()
        assert_unprivileged(m.proc.pid, store)
        st = os.stat(sock)
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o660
        assert (st.st_uid, st.st_gid) == (0, IDS[1])
    finally:
        assert m.stop(remove_dir=False) == 0, m.output()


@as_root
@pytest.mark.parametrize("program", ["policyd", "milter"])
def test_daemon_refuses_store_dir_it_cannot_write(base, program):
    """A store directory the daemon user cannot write: SQLite could open
    neither activity.db nor (WAL mode) policy.db-shm. The daemon says which
    directory, which user, and what to do, and exits 1."""
    s = init_store(base / "store")
    os.chmod(s, 0o755)  # root's, not the daemon's
    if program == "policyd":
        args = [POLICYD, "-f", "-d", s, "-u", "nobody", "-g", "nogroup",
                "-l", "unix:%s" % (base / "p.sock")]
    else:
        args = [MILTER, "-f", "-d", s, "-u", "nobody", "-g", "nogroup",
                "-p", "unix:%s" % (base / "m.sock")]
    r = subprocess.run(args, capture_output=True, text=True, timeout=20)
    assert r.returncode == 1
    assert "store directory %s is not writable by user nobody" % s in r.stderr, r.stderr
    assert "chmod" in r.stderr
    assert not os.path.exists(os.path.join(s, "activity.db"))


# --- saslgatectl and a world-writable store directory ------------------------------


def run_ctl(store_dir, *args):
    return subprocess.run([CTL, "-d", str(store_dir)] + list(args), capture_output=True,
                          text=True, timeout=30)


def test_ctl_refuses_world_writable_store_dir(tmp_path):
    s = init_store(tmp_path / "store")
    before = open(os.path.join(s, "policy.db"), "rb").read()
    os.chmod(s, 0o777)
    for args in (["policy", "list"],
                 ["exception", "add", "--user", "x@example.com", "--permanent",
                  "--reason", "must not be stored"]):
        r = run_ctl(s, *args)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        assert "world-writable" in r.stderr and s in r.stderr, r.stderr
    assert open(os.path.join(s, "policy.db"), "rb").read() == before
    # Restricting deletion to owners (sticky bit, as /tmp) is accepted...
    os.chmod(s, 0o1777)
    assert run_ctl(s, "policy", "list").returncode == 0
    # ...and so is the directory once it is no longer world-writable.
    os.chmod(s, 0o750)
    assert run_ctl(s, "check").returncode == 0
