"""The Debian package (issue 17), on this machine: built with dpkg-buildpackage
from what "git archive HEAD" gives, lintian-clean, installed with dpkg -i,
both daemons started as the saslgate user the way their units start them
(without systemd), upgraded in place, removed, purged, and nothing left.

It installs into the real system, so it needs root (it is skipped
otherwise) and refuses to run where saslgate is already installed or the
user saslgate exists. It never touches /etc/postfix, /etc/dovecot or
/etc/mail, and checks that the package does not either. The tests run in
file order and share one build; the module's finalizer purges the package
whatever happened.
"""

import glob
import grp
import hashlib
import os
import pwd
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SRCDIR = os.path.abspath(os.environ.get("SASLGATE_SRCDIR", ROOT))
sys.path.insert(0, os.path.join(SRCDIR, "tests", "integration"))

from milter_wire import SMFIR_ACCEPT, SMFIR_REPLYCODE, reply_text, session  # noqa: E402
from policyd_util import BLOCK_REPLY, DUNNO, PolicyClient  # noqa: E402

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="installs a package into the system: needs root")

STORE = "/var/lib/saslgate"
UNIT_DIR = "/lib/systemd/system"
UNITS = ("saslgate-policyd.service", "saslgate-milter.service")
SPOOL_DIR = "/var/spool/postfix/saslgate"
PROGRAMS = ("saslgatectl", "saslgate-policyd", "saslgate-milter")
MAN_PAGES = ("man8/saslgatectl.8.gz", "man8/saslgate-policyd.8.gz",
             "man8/saslgate-milter.8.gz", "man5/saslgate.5.gz")
EXAMPLES = ("postfix/main.cf.policyd", "postfix/main.cf.milter", "postfix/master.cf.policyd",
            "sendmail/saslgate.mc", "nagios/check_saslgate", "prometheus/saslgate.rules.yml",
            "cron/saslgate.cron", "dovecot/95-saslgate-policy.conf")
# Data files under /usr/share/saslgate: the PostgreSQL store's roles.
SHARED = ("roles.sql",)
MTA_CONFIG = ("/etc/postfix", "/etc/dovecot", "/etc/mail")
# The exposure score systemd-analyze security gives the shipped units
# (SECURITY.md); a unit that loses its hardening fails here.
MAX_EXPOSURE = 2.0


def run(*args, check=True, **kw):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300,
                       **kw)
    if check and r.returncode != 0:
        raise AssertionError("%s exited %d:\n%s%s" % (shlex.join(map(str, args)), r.returncode,
                                                     r.stdout[-4000:], r.stderr[-4000:]))
    return r


def installed():
    r = run("dpkg-query", "-W", "-f=${db:Status-Abbrev}", "saslgate", check=False)
    return r.returncode == 0 and r.stdout.startswith("i")


def known(name, db):
    try:
        (pwd.getpwnam if db == "passwd" else grp.getgrnam)(name)
        return True
    except KeyError:
        return False


def tree_state(paths):
    """path -> (mode, uid, gid, sha256 or link target) for everything under paths."""
    state = {}
    for top in paths:
        for dirpath, dirnames, filenames in os.walk(top):
            for name in [""] + dirnames + filenames:
                p = os.path.join(dirpath, name) if name else dirpath
                st = os.lstat(p)
                if stat.S_ISREG(st.st_mode):
                    with open(p, "rb") as f:
                        what = hashlib.sha256(f.read()).hexdigest()
                elif stat.S_ISLNK(st.st_mode):
                    what = os.readlink(p)
                else:
                    what = None
                state[p] = (st.st_mode, st.st_uid, st.st_gid, what)
    return state


def owner_mode(path):
    st = os.lstat(path)
    return pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name, \
        stat.S_IMODE(st.st_mode)


def unit_settings(path):
    """The [Service] settings of a unit file: key -> list of values."""
    out = {}
    section = None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line
                continue
            if section == "[Service]":
                key, _, value = line.partition("=")
                out.setdefault(key, []).append(value)
    return out


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.split()
    return out


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


class State:
    """What the tests share: the build, the daemons, the MTA config before."""
    workdir = None
    deb = None
    changes = None
    version = None
    uid = None
    mta_before = None
    procs = []


@pytest.fixture(scope="module")
def pkg():
    if installed() or known("saslgate", "passwd") or known("saslgate", "group"):
        pytest.fail("saslgate is installed here, or the user or group saslgate exists: "
                    "the package test would change that system; purge it first")
    s = State()
    s.workdir = tempfile.mkdtemp(prefix="sgpkg")
    s.mta_before = tree_state(MTA_CONFIG)
    try:
        yield s
    finally:
        for p in s.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if installed() or known("saslgate", "passwd"):
            run("dpkg", "--purge", "saslgate", check=False)
        shutil.rmtree(s.workdir, ignore_errors=True)


def test_build_from_git_archive(pkg):
    """dpkg-buildpackage -us -uc -b on "git archive HEAD": what a source
    package would hold, nothing stray (no configure~)."""
    git = ["git", "-c", "safe.directory=" + SRCDIR, "-C", SRCDIR]
    tracked = run(*git, "ls-files").stdout.split("\n")
    assert "configure~" not in tracked and not any(f.endswith("~") for f in tracked)
    changelog = run(*git, "show", "HEAD:debian/changelog").stdout
    pkg.version = re.match(r"saslgate \(([^)]+)\)", changelog).group(1)
    tree = os.path.join(pkg.workdir, "saslgate-" + pkg.version)
    os.mkdir(tree)
    archive = subprocess.Popen(git + ["archive", "--format=tar", "HEAD"],
                               stdout=subprocess.PIPE)
    run("tar", "-x", "-C", tree, stdin=archive.stdout)
    assert archive.wait() == 0
    env = dict(os.environ, DEB_BUILD_OPTIONS="parallel=2", LC_ALL="C.UTF-8")
    r = run("dpkg-buildpackage", "-us", "-uc", "-b", cwd=tree, env=env, check=False)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
    pkg.deb = os.path.join(pkg.workdir, "saslgate_%s_amd64.deb" % pkg.version)
    pkg.changes = os.path.join(pkg.workdir, "saslgate_%s_amd64.changes" % pkg.version)
    assert os.path.exists(pkg.deb), os.listdir(pkg.workdir)
    # The package carries the manual pages whatever dpkg's path-exclude says.
    contents = run("dpkg-deb", "-c", pkg.deb).stdout
    for page in MAN_PAGES:
        assert "./usr/share/man/" + page in contents, page


def test_lintian_clean(pkg):
    assert pkg.deb, "no package built"
    r = run("lintian", "--fail-on", "error,warning", pkg.changes, check=False)
    tags = [line for line in r.stdout.splitlines() if re.match(r"[EW]: ", line)]
    assert r.returncode == 0 and not tags, r.stdout + r.stderr


def test_install(pkg):
    assert pkg.deb, "no package built"
    run("dpkg", "-i", pkg.deb)
    assert installed()
    for p in PROGRAMS:
        assert owner_mode("/usr/sbin/" + p) == ("root", "root", 0o755), p
    excluded = run("sh", "-c", "cat /etc/dpkg/dpkg.cfg.d/* 2>/dev/null", check=False).stdout
    if "/usr/share/man" not in excluded:
        for page in MAN_PAGES:
            assert owner_mode("/usr/share/man/" + page) == ("root", "root", 0o644), page
    for e in EXAMPLES:
        assert os.path.isfile("/usr/share/doc/saslgate/examples/" + e), e
    for f in SHARED:
        path = "/usr/share/saslgate/" + f
        assert owner_mode(path) == ("root", "root", 0o644), f
        with open(path) as got, open(os.path.join(SRCDIR, "schema", "pg", f)) as want:
            assert got.read() == want.read(), f
    readme = "/usr/share/doc/saslgate/README.Debian"
    if not os.path.exists(readme):  # dh_compress compresses a large one
        readme = run("zcat", readme + ".gz").stdout
    else:
        readme = open(readme).read()
    assert "/usr/share/saslgate/roles.sql" in readme
    for u in UNITS:
        assert owner_mode(os.path.join(UNIT_DIR, u)) == ("root", "root", 0o644), u
    # Not enabled: the MTA is not configured to use them yet.
    assert not any(os.path.exists("/etc/systemd/system/multi-user.target.wants/" + u)
                   for u in UNITS)
    # The system user and its group.
    user = pwd.getpwnam("saslgate")
    pkg.uid = user.pw_uid
    assert user.pw_uid < 1000 and user.pw_shell.endswith("nologin")
    assert grp.getgrgid(user.pw_gid).gr_name == "saslgate"
    # The store: made by saslgatectl init, root's, in a sticky directory the
    # daemons' group may write (for activity.db).
    assert owner_mode(STORE) == ("root", "saslgate", 0o1770)
    for name in ("policy.db", "policy.db-wal", "policy.db-shm", "policy.notice"):
        o, _, mode = owner_mode(os.path.join(STORE, name))
        assert o == "root" and mode & 0o022 == 0 and mode & 0o444 == 0o444, (name, oct(mode))
    assert not os.path.exists(os.path.join(STORE, "activity.db"))
    policies = run("saslgatectl", "policy", "list").stdout
    assert "block-legacy" in policies and "enforce" in policies
    # Postfix, Dovecot and Sendmail are left alone.
    assert tree_state(MTA_CONFIG) == pkg.mta_before
    assert not os.path.exists(SPOOL_DIR)


def test_units_verify_and_score(pkg):
    assert installed(), "not installed"
    paths = [os.path.join(UNIT_DIR, u) for u in UNITS]
    man = [] if shutil.which("man") else ["--man=no"]
    cached = set(glob.glob("/var/cache/man/**/saslgate*", recursive=True))
    r = run("systemd-analyze", "verify", *man, *paths, check=False)
    # verify runs man(1) for Documentation=, and man-db caches what it
    # formats: the test's doing, not the package's, so the test removes it.
    for page in set(glob.glob("/var/cache/man/**/saslgate*", recursive=True)) - cached:
        os.unlink(page)
    assert r.returncode == 0 and r.stdout + r.stderr == "", r.stdout + r.stderr
    for p in paths:
        r = run("systemd-analyze", "security", "--offline=true", "--no-pager", p)
        score = float(re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout).group(1))
        print("%s: exposure %.1f" % (os.path.basename(p), score))
        assert score <= MAX_EXPOSURE, r.stdout


def start_as_unit(unit, sockdir, log):
    """Runs the unit's ExecStartPre and ExecStart as systemd would, but
    without it: ExecStartPre ("+": privileged) as root, then ExecStart as
    User:Group with UMask, no new privileges and an empty capability bounding
    set (setpriv). The socket directory is moved from Postfix's spool to
    sockdir, and the group postfix is kept only where it exists."""
    cfg = unit_settings(os.path.join(UNIT_DIR, unit))
    group = "postfix" if known("postfix", "group") else "saslgate"

    def localize(cmd):
        words = [w.replace(SPOOL_DIR, sockdir) for w in shlex.split(cmd)]
        return [group if w == "postfix" else w for w in words]
    for pre in cfg.get("ExecStartPre", []):
        assert pre.startswith("+"), pre
        run(*localize(pre[1:]))
    assert cfg["NoNewPrivileges"] == ["yes"] and cfg["CapabilityBoundingSet"] == [""]
    umask = int(cfg["UMask"][0], 8)
    (start,) = cfg["ExecStart"]
    cmd = ["setpriv", "--reuid=" + cfg["User"][0], "--regid=" + cfg["Group"][0],
           "--init-groups", "--no-new-privs", "--bounding-set=-all", "--inh-caps=-all",
           "--"] + localize(start)
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                            preexec_fn=lambda: os.umask(umask), cwd="/")


def test_daemons_as_saslgate(pkg):
    assert installed(), "not installed"
    sockdir = tempfile.mkdtemp(prefix="sg", dir="/run")
    os.rmdir(sockdir)  # made by the unit's ExecStartPre
    try:
        logs = {u: open(os.path.join(pkg.workdir, u + ".log"), "w+") for u in UNITS}
        procs = {u: start_as_unit(u, sockdir, logs[u]) for u in UNITS}
        pkg.procs.extend(procs.values())
        policy_sock = os.path.join(sockdir, "policy.sock")
        milter_sock = os.path.join(sockdir, "milter.sock")

        def up():
            return all(p.poll() is None for p in procs.values()) and \
                os.path.exists(policy_sock) and os.path.exists(milter_sock)
        assert wait_for(up), {u: open(logs[u].name).read() for u in UNITS}
        # The socket directory and the sockets, for the group postfix.
        group = "postfix" if known("postfix", "group") else "saslgate"
        assert owner_mode(sockdir) == ("saslgate", group, 0o2750)
        for s in (policy_sock, milter_sock):
            st = os.stat(s)
            assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660, s
            assert grp.getgrgid(st.st_gid).gr_name == group, s
        # One PLAIN and one XOAUTH2 request to the policy daemon.
        with PolicyClient(policy_sock) as c:
            assert c.ask(instance="pkg.1", sasl_method="PLAIN") == BLOCK_REPLY
            assert c.ask(instance="pkg.2", sasl_method="XOAUTH2") == DUNNO
        # And the same to the milter.
        cmd, data = session("unix:" + milter_sock, {"i": "PKG1", "{auth_type}": "PLAIN",
                                                    "{auth_authen}": "alice@example.com"})
        assert cmd == SMFIR_REPLYCODE and reply_text(data).startswith("550 5.7.9 ")
        cmd, _ = session("unix:" + milter_sock, {"i": "PKG2", "{auth_type}": "XOAUTH2",
                                                 "{auth_authen}": "alice@example.com"})
        assert cmd == SMFIR_ACCEPT
        # Both run as saslgate with no capability at all.
        uid = pwd.getpwnam("saslgate").pw_uid
        for u, p in procs.items():
            st = proc_status(p.pid)
            assert st["Uid"] == [str(uid)] * 4, (u, st["Uid"])
            assert st["NoNewPrivs"] == ["1"], u
            for cap in ("CapEff", "CapPrm", "CapBnd", "CapAmb"):
                assert int(st[cap][0], 16) == 0, (u, cap, st[cap])
        # activity.db is the daemons' own; policy.db and its files stay root's.
        activity = os.path.join(STORE, "activity.db")
        assert wait_for(lambda: os.path.exists(activity))
        o, _, mode = owner_mode(activity)
        assert o == "saslgate" and mode == 0o640, (o, oct(mode))
        for name in ("policy.db", "policy.db-wal", "policy.db-shm", "policy.notice"):
            assert owner_mode(os.path.join(STORE, name))[0] == "root", name
        r = run("setpriv", "--reuid=saslgate", "--regid=saslgate", "--init-groups", "--",
                "sh", "-c", "for f in policy.db policy.db-wal policy.db-shm policy.notice; "
                "do : >> %s/$f && echo $f; done; exit 0" % STORE, check=False)
        assert r.stdout == "", "the daemons' user can write " + r.stdout
        for u, p in procs.items():
            p.send_signal(signal.SIGTERM)
            assert p.wait(timeout=20) == 0, open(logs[u].name).read()
    finally:
        shutil.rmtree(sockdir, ignore_errors=True)


def test_upgrade_keeps_store(pkg):
    assert installed(), "not installed"
    run("saslgatectl", "exception", "add", "--user", "upgrade-marker@example.com",
        "--permanent", "--reason", "kept across the upgrade")
    before = {n: os.stat(os.path.join(STORE, n)).st_ino for n in ("policy.db", "activity.db")}
    uid = pwd.getpwnam("saslgate").pw_uid
    r = run("dpkg", "-i", pkg.deb)
    assert "Created the saslgate store" not in r.stdout  # init ran once only
    assert "upgrade-marker@example.com" in run("saslgatectl", "exception", "list").stdout
    audit = run("saslgatectl", "audit").stdout
    assert len(re.findall(r"\binit\b", audit)) == 1, audit
    assert {n: os.stat(os.path.join(STORE, n)).st_ino for n in before} == before
    assert pwd.getpwnam("saslgate").pw_uid == uid
    assert owner_mode(STORE) == ("root", "saslgate", 0o1770)
    assert owner_mode(os.path.join(STORE, "activity.db"))[0] == "saslgate"
    for name in ("policy.db", "policy.db-wal", "policy.db-shm"):
        assert owner_mode(os.path.join(STORE, name))[0] == "root", name
    assert run("saslgatectl", "check").returncode == 0


def test_remove_then_purge(pkg):
    assert installed(), "not installed"
    files = [f for f in run("dpkg", "-L", "saslgate").stdout.splitlines()
             if os.path.lexists(f) and not os.path.isdir(f)]
    assert "/usr/sbin/saslgatectl" in files
    run("dpkg", "--remove", "saslgate")
    assert not os.path.exists("/usr/sbin/saslgatectl")
    # A removal keeps the data and the user.
    assert os.path.exists(os.path.join(STORE, "policy.db")) and known("saslgate", "passwd")
    run("dpkg", "--purge", "saslgate")
    assert not installed()
    left = [f for f in files if os.path.lexists(f)]
    assert left == []
    assert not os.path.lexists(STORE) and not os.path.lexists(SPOOL_DIR)
    assert not known("saslgate", "passwd") and not known("saslgate", "group")
    assert glob.glob("/var/lib/systemd/deb-systemd-helper-*/**/saslgate*", recursive=True) == []
    # No file of the daemons' account outlives it (activity.db, sockets).
    r = run("find", "/etc", "/run", "/var", "-xdev", "-uid", str(pkg.uid), check=False)
    assert r.stdout == "", r.stdout
    assert run("dpkg-query", "-W", "saslgate", check=False).returncode != 0 or \
        "not-installed" in run("dpkg-query", "-W", "-f=${db:Status-Status}", "saslgate",
                               check=False).stdout
    assert tree_state(MTA_CONFIG) == pkg.mta_before
