"""A private, real Sendmail 8.17 for the end-to-end tests, protected by
saslgate-milter hooked with the shipped contrib/sendmail/saslgate.mc fragment.

Sendmail and Postfix conflict as Debian packages, so Sendmail is never
installed: `apt-get download` fetches sendmail-bin, sendmail-base and
sendmail-cf into a cache directory and `dpkg -x` unpacks them into a private
root.  The .cf is built with m4 from the unpacked sendmail-cf and a test .mc
that splices in the shipped fragment (only its socket port is replaced by a
free one), so that what is documented is what is tested.

Sendmail runs in the foreground (-bD) inside `unshare --mount --uts`: the new
UTS namespace gets the host name mx.example.test (a host name without a dot
makes sendmail sleep 60 s), and private bind mounts give it the test's
/etc/hosts, resolv.conf and Cyrus SASL configuration directory (sendmail
clears its environment, so SASL_CONF_PATH cannot be used).  unshare execs
sendmail in the same process, so the pid we started is sendmail's pid and the
namespace (with its mounts) disappears when that process exits.

See /work/shared/E2E-NOTES.md, second part, for the verified recipe.
"""
import fcntl
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import rig
from rig import BUILD, PASSWORD, REPO, free_port, wait_for

DEBS = ("sendmail-bin", "sendmail-base", "sendmail-cf")
CACHE = Path(os.environ.get("SASLGATE_E2E_CACHE", "/var/cache/saslgate-e2e"))
FRAGMENT = REPO / "contrib" / "sendmail" / "saslgate.mc"
FQDN = "mx.example.test"
MECHS = "PLAIN LOGIN CRAM-MD5 DIGEST-MD5"
REALM = "example.test"

# The socket of the shipped INPUT_MAIL_FILTER line, replaced by the test's port.
FRAGMENT_SOCKET = re.compile(r"S=inet:(\d+)@127\.0\.0\.1")


# Sendmail refuses files under a group- or world-writable directory such as
# /tmp ("World writable directory", exit 71); its own tree lives here instead.
SAFE_BASE = Path(os.environ.get("SASLGATE_E2E_RUNDIR", "/run/saslgate-e2e"))


def safe_dir(prefix="sendmail-"):
    """A fresh directory whose ancestors are all root-owned and not writable
    by others (remove it with shutil.rmtree)."""
    SAFE_BASE.mkdir(mode=0o755, parents=True, exist_ok=True)
    SAFE_BASE.chmod(0o755)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=str(SAFE_BASE)))


class SendmailUnavailable(RuntimeError):
    pass


def _debs(cache):
    found = {}
    for name in DEBS:
        hits = sorted(cache.glob("%s_*.deb" % name))
        if hits:
            found[name] = hits[-1]
    return found


def fetch_debs(cache=CACHE):
    """The three Sendmail .debs, downloaded once into the cache directory
    (under a lock: concurrent test runs share it). Raises SendmailUnavailable
    (the tests fail, never skip) when apt cannot fetch them."""
    try:
        cache.mkdir(parents=True, exist_ok=True)
        lock = open(cache / ".lock", "w")
    except OSError as e:
        raise SendmailUnavailable("cannot create the Sendmail package cache %s (set "
                                  "SASLGATE_E2E_CACHE): %s" % (cache, e))
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = _debs(cache)
        missing = [n for n in DEBS if n not in found]
        if not missing:
            return [found[n] for n in DEBS]
        try:
            # Sandbox::User=root: the cache is root's, not _apt's.
            proc = subprocess.run(["apt-get", "-q", "-o", "APT::Sandbox::User=root",
                                   "download"] + missing, cwd=str(cache),
                                  capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise SendmailUnavailable(
                "cannot fetch the Sendmail packages %s with apt-get download: %s"
                % (" ".join(missing), e))
        found = _debs(cache)
        still = [n for n in DEBS if n not in found]
        if still:
            raise SendmailUnavailable(
                "the Sendmail end-to-end tests need the Debian packages %s, fetched "
                "(not installed) with `apt-get download` into %s; that failed "
                "(exit %d; is the network up and `apt-get update` done?):\n%s%s"
                % (" ".join(still), cache, proc.returncode, proc.stdout, proc.stderr))
        return [found[n] for n in DEBS]


def unpack(debs, root):
    """dpkg -x each package into root; returns the paths the rig uses."""
    root.mkdir(parents=True, exist_ok=True)
    for deb in debs:
        proc = subprocess.run(["dpkg", "-x", str(deb), str(root)], capture_output=True,
                              text=True, timeout=120)
        if proc.returncode != 0:
            raise SendmailUnavailable("dpkg -x %s failed: %s" % (deb, proc.stderr))
    binary = root / "usr" / "libexec" / "sendmail" / "sendmail"
    cf = root / "usr" / "share" / "sendmail" / "cf"
    for p in (binary, cf / "m4" / "cf.m4"):
        if not p.exists():
            raise SendmailUnavailable("the unpacked Sendmail packages lack %s" % p)
    return binary, cf


def require_tools():
    for tool, pkg in (("m4", "m4"), ("unshare", "util-linux"), ("dpkg", "dpkg"),
                      ("apt-get", "apt"), ("saslpasswd2", "sasl2-bin")):
        if shutil.which(tool) is None:
            raise SendmailUnavailable("the Sendmail end-to-end tests need %s (Debian "
                                      "package %s)" % (tool, pkg))


def read_fragment():
    if not FRAGMENT.exists():
        raise AssertionError("the shipped Sendmail fragment %s is missing" % FRAGMENT)
    return FRAGMENT.read_text()


def fragment_filter_line(text):
    """The INPUT_MAIL_FILTER line of the shipped fragment (not a dnl comment)."""
    lines = [l for l in text.splitlines()
             if l.startswith("INPUT_MAIL_FILTER(") or l.startswith("MAIL_FILTER(")]
    assert len(lines) == 1, "expected one INPUT_MAIL_FILTER line in %s, found %r" % (
        FRAGMENT, lines)
    return lines[0]


def fragment_flags(text):
    """The F= flags of the shipped INPUT_MAIL_FILTER line ('' when none)."""
    m = re.search(r"F=([A-Z]*)", fragment_filter_line(text))
    return m.group(1) if m else ""


def splice_fragment(text, milter_port):
    """The shipped fragment with its inet socket pointed at the test's port."""
    line = fragment_filter_line(text)
    found = FRAGMENT_SOCKET.findall(line)
    assert len(found) == 1, (
        "the shipped INPUT_MAIL_FILTER line must use one S=inet:PORT@127.0.0.1 socket "
        "(the test replaces PORT): %r" % line)
    return text.replace(line, FRAGMENT_SOCKET.sub(
        "S=inet:%d@127.0.0.1" % milter_port, line))


class SendmailSaslgate(rig.Saslgate):
    """rig.Saslgate plus a milter on an inet socket (what the fragment ships)."""

    def __init__(self, root):
        super().__init__(root)
        self.milter_port = free_port()

    def start_milter_inet(self):
        name = "milter"
        log = open(self.run_dir / "milter.log", "ab")
        proc = subprocess.Popen([
            str(BUILD / "saslgate-milter"), "-f", "-d", str(self.store),
            "-o", "heartbeat_interval=1s", "-o", "activity_flush_ms=50",
            "-p", "inet:%d@127.0.0.1" % self.milter_port],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.procs[name] = proc
        try:
            wait_for(lambda: proc.poll() is not None or listening(self.milter_port), 10,
                     "saslgate-milter to listen on port %d" % self.milter_port)
        except TimeoutError:
            pass
        if proc.poll() is not None or not listening(self.milter_port):
            self.stop(name)
            raise RuntimeError("saslgate-milter did not start on inet:%d: %s" % (
                self.milter_port, (self.run_dir / "milter.log").read_text(errors="replace")))
        return proc

    def milter_running(self):
        proc = self.procs.get("milter")
        return proc is not None and proc.poll() is None

    def milter_log(self):
        p = self.run_dir / "milter.log"
        return p.read_text(errors="replace") if p.exists() else ""


def listening(port, host="127.0.0.1"):
    """True when something LISTENs on host:port (from /proc/net/tcp, so that no
    connection is made to the milter just to find out)."""
    want = "%s:%04X" % ("".join("%02X" % int(o) for o in reversed(host.split("."))), port)
    try:
        with open("/proc/net/tcp") as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[1] == want and fields[3] == "0A":
                    return True
    except OSError:
        pass
    return False


class Sendmail:
    """A private Sendmail: .cf from the shipped fragment, Cyrus SASL with a
    private sasldb, a loopback listener on a free port, mail kept in the queue."""

    def __init__(self, root, binary, cf_dir, milter_port, users, fragment=None,
                 mta_options="", msa=False):
        """root: a directory no ancestor of which is group- or world-writable
        (see safe_dir); Sendmail refuses its files under /tmp (exit 71).
        fragment: the .mc fragment text (default: the shipped one).
        mta_options: appended to the MTA listener's DAEMON_OPTIONS (e.g. "M=A").
        msa: also listen as MSA on msa_port with InputMailFilters=saslgate
        (the per-listener deployment)."""
        self.root = root
        self.fragment = fragment
        self.mta_options = mta_options
        self.msa_port = free_port() if msa else None
        self.binary = binary
        self.cf_dir = cf_dir
        self.milter_port = milter_port
        self.users = users
        self.port = free_port()
        self.queue = self.root / "mqueue"
        self.sasl_dir = self.root / "sasl"
        self.sasldb = self.sasl_dir / "sasldb2"
        self.cf = self.root / "sendmail.cf"
        self.traffic = self.root / "traffic.log"
        self.proc = None

    # --- configuration ---------------------------------------------------
    def mc(self):
        r = self.root
        head = """divert(-1)
dnl saslgate end-to-end test: a private Sendmail, every path under {r}
divert(0)dnl
VERSIONID(`saslgate e2e')dnl
OSTYPE(`linux')dnl
define(`confDOMAIN_NAME', `{fqdn}')dnl
define(`MAIL_SETTINGS_DIR', `{r}/')dnl
define(`confEBINDIR', `{r}/bin')dnl
define(`QUEUE_DIR', `{r}/mqueue')dnl
define(`STATUS_FILE', `{r}/sendmail.st')dnl
define(`confPID_FILE', `{r}/sendmail.pid')dnl
define(`HELP_FILE', `{r}/helpfile')dnl
define(`ALIAS_FILE', `{r}/aliases')dnl
define(`confCW_FILE', `{r}/local-host-names')dnl
define(`confCT_FILE', `{r}/trusted-users')dnl
define(`confCR_FILE', `{r}/relay-domains')dnl
define(`confSERVICE_SWITCH_FILE', `{r}/service.switch')dnl
define(`confHOSTS_FILE', `{r}/hosts')dnl
define(`confDEAD_LETTER_DROP', `{r}/dead.letter')dnl
define(`confHOST_STATUS_DIRECTORY', `{r}/hoststat')dnl
define(`confDONT_PROBE_INTERFACES', `True')dnl
define(`confBIND_OPTS', `-DNSRCH -DEFNAMES')dnl
define(`confTO_IDENT', `0')dnl
define(`confDELIVERY_MODE', `queueonly')dnl
define(`confAUTH_MECHANISMS', `{mechs}')dnl
TRUST_AUTH_MECH(`{mechs}')dnl
define(`confAUTH_OPTIONS', `A')dnl
FEATURE(`nocanonify')dnl
FEATURE(`accept_unresolvable_domains')dnl
FEATURE(`no_default_msa')dnl
DAEMON_OPTIONS(`Family=inet, Name=MTA, Port={port}, Addr=127.0.0.1{mta}')dnl
{msa}dnl ---- contrib/sendmail/saslgate.mc (shipped), socket port replaced ----
""".format(r=r, fqdn=FQDN, mechs=MECHS, port=self.port,
           mta=", " + self.mta_options if self.mta_options else "",
           msa="DAEMON_OPTIONS(`Family=inet, Name=MSA, Port=%d, Addr=127.0.0.1, M=Ea, "
               "InputMailFilters=saslgate')dnl\n" % self.msa_port if self.msa_port else "")
        tail = """dnl ---- end of the shipped fragment ----
MAILER(`local')dnl
MAILER(`smtp')dnl
"""
        fragment = self.fragment if self.fragment is not None else read_fragment()
        return head + splice_fragment(fragment, self.milter_port) + tail

    def build_cf(self):
        r = self.root
        for d in (r, r / "bin", r / "hoststat", self.sasl_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.queue.mkdir(mode=0o700, exist_ok=True)
        for name in ("sendmail.st", "aliases", "local-host-names", "trusted-users",
                     "relay-domains", "helpfile"):
            (r / name).touch()
        (r / "service.switch").write_text("hosts files\naliases files\n")
        # 127.0.0.2 ("another network") needs a PTR answer, or Sendmail's relay
        # check tempfails (450 4.4.0 Cannot resolve PTR record).
        (r / "hosts").write_text("127.0.0.1 %s mx localhost\n::1 %s mx localhost\n"
                                 "127.0.0.2 branch.example.test\n" % (FQDN, FQDN))
        (r / "resolv.conf").write_text("nameserver 127.0.0.1\noptions attempts:1 timeout:1\n")
        (r / "test.mc").write_text(self.mc())
        proc = subprocess.run(["m4", "-D_CF_DIR_=%s/" % self.cf_dir,
                               str(self.cf_dir / "m4" / "cf.m4"), str(r / "test.mc")],
                              capture_output=True, text=True, timeout=60)
        if proc.returncode != 0 or "INPUT_MAIL_FILTER" in proc.stdout:
            raise RuntimeError("m4 failed to build sendmail.cf from %s: %s" % (
                r / "test.mc", proc.stderr))
        self.cf.write_text(proc.stdout)

    def make_sasldb(self):
        for user in self.users:
            name, _, realm = user.partition("@")
            subprocess.run(["saslpasswd2", "-p", "-f", str(self.sasldb), "-c",
                            "-u", realm or REALM, name],
                           input=PASSWORD.encode(), check=True, timeout=30)
        self.sasldb.chmod(0o600)
        (self.sasl_dir / "Sendmail.conf").write_text(
            "pwcheck_method: auxprop\nauxprop_plugin: sasldb\n"
            "sasldb_path: %s\nmech_list: %s\n" % (self.sasldb, MECHS))

    # --- process -----------------------------------------------------------
    def _namespace_script(self, argv):
        r = self.root
        binds = ["mount --bind %s /etc/hosts" % (r / "hosts")]
        if os.path.exists("/etc/resolv.conf"):
            binds.append("mount --bind %s /etc/resolv.conf" % (r / "resolv.conf"))
        # libsasl2 reads Sendmail.conf only from its built-in directories.
        for d in ("/usr/lib/sasl2", "/etc/sasl2"):
            if os.path.isdir(d):
                binds.append("mount --bind %s %s" % (self.sasl_dir, d))
        return "set -e\nhostname %s\n%s\nexec %s\n" % (
            FQDN, "\n".join(binds), " ".join(shlex.quote(str(a)) for a in argv))

    def _namespace_argv(self, argv):
        return ["unshare", "--mount", "--uts", "--propagation", "private",
                "sh", "-c", self._namespace_script(argv)]

    def start(self):
        self.build_cf()
        self.make_sasldb()
        log = open(self.root / "sendmail.out", "ab")
        # unshare execs sh, which execs sendmail: one pid from start to end.
        self.proc = subprocess.Popen(
            self._namespace_argv([self.binary, "-bD", "-C", self.cf, "-X", self.traffic]),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        log.close()
        try:
            wait_for(lambda: self.proc.poll() is not None or self._greets(), 20,
                     "Sendmail to listen on port %d" % self.port)
        except TimeoutError:
            pass
        if self.msa_port and self.proc.poll() is None:
            wait_for(lambda: self.proc.poll() is not None or self._greets(self.msa_port), 20,
                     "Sendmail to listen on port %d" % self.msa_port)
        if self.proc.poll() is not None or not self._greets():
            self.stop()
            raise RuntimeError("sendmail did not start (exit %s): %s" % (
                self.proc.returncode, (self.root / "sendmail.out").read_text(errors="replace")))

    def _greets(self, port=None):
        import socket
        try:
            with socket.create_connection(("127.0.0.1", port or self.port), timeout=1) as s:
                s.settimeout(5)
                ok = s.recv(512).startswith(b"220")
                s.sendall(b"QUIT\r\n")
                return ok
        except OSError:
            return False

    @property
    def pid(self):
        return self.proc.pid if self.proc else 0

    def stop(self):
        """Stops sendmail (and so its namespace) by pid; its SMTP children too."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # Session children of the daemon (one per SMTP connection) exit on
        # their own when the daemon ends; make sure none is left.
        pgid = self.proc.pid
        try:
            wait_for(lambda: not _group_alive(pgid), 10, "sendmail's children to exit")
        except TimeoutError:
            os.killpg(pgid, signal.SIGKILL)

    # --- observation ---------------------------------------------------------
    def queued(self):
        """{queue id: qf text} of the messages in the private queue."""
        out = {}
        for qf in self.queue.glob("qf*"):
            try:
                out[qf.name[2:]] = qf.read_text(errors="replace")
            except OSError:
                pass
        return out

    def queued_with(self, needle):
        """Queue ids whose qf file (envelope and headers) contains needle."""
        return [qid for qid, text in self.queued().items() if needle in text]

    def mailq(self):
        """`sendmail -bp` on the private queue (in its own namespace too: every
        sendmail invocation resolves the host name)."""
        proc = subprocess.run(self._namespace_argv([self.binary, "-C", self.cf, "-bp"]),
                              capture_output=True, text=True, timeout=120)
        return proc.stdout + proc.stderr

    def traffic_log(self):
        return self.traffic.read_text(errors="replace") if self.traffic.exists() else ""


def _group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def namespace_of(pid):
    """(mount namespace, UTS namespace) of a process, as /proc names them."""
    return tuple(os.readlink("/proc/%d/ns/%s" % (pid, ns)) for ns in ("mnt", "uts"))


def namespace_members(ns):
    """Pids still in the mount or UTS namespace ns (from namespace_of)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            mine = namespace_of(int(entry))
            if mine[0] == ns[0] or mine[1] == ns[1]:
                pids.append(int(entry))
        except OSError:
            pass
    return pids


def assert_nothing_left(sendmail, ns):
    """After stop: sendmail's pid has exited, no process is left in its
    namespaces (so its bind mounts and host name are gone with them), the
    host's mount table never saw its files, and its port is closed."""
    assert sendmail.proc is None or sendmail.proc.poll() is not None, "sendmail still runs"
    if ns is not None:
        assert ns != namespace_of(os.getpid()), "sendmail ran in the test's own namespaces"
        left = namespace_members(ns)
        assert not left, "processes left in sendmail's namespace: %s" % left
    with open("/proc/self/mountinfo") as f:
        mounts = f.read()
    assert str(sendmail.root) not in mounts, "a sendmail bind mount leaked to the host"
    for port in (sendmail.port, sendmail.msa_port):
        assert not port or not listening(port), "port %d still listening" % port
