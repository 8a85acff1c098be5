"""A private mail server for end-to-end tests: Postfix 3.7 with real SASL
(Dovecot or Cyrus SASL), protected by the real saslgate daemons.

Everything runs on loopback under one temporary directory and is stopped by
pid.  See /work/shared/E2E-NOTES.md (verified recipes) for the why of each
setting.  Nothing here is a mock: the processes are Debian's postfix, dovecot
and libsasl2, and saslgate's own binaries from the build directory.
"""
import base64
import hashlib
import hmac
import json
import os
import pwd
import grp
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("SASLGATE_BUILDDIR", REPO))

REQUIRED = {
    "postfix": "/usr/sbin/postfix",
    "dovecot-core": "/usr/sbin/dovecot",
    "swaks": "/usr/bin/swaks",
    "sasl2-bin": "/usr/sbin/saslpasswd2",
    "libsasl2-modules": "/usr/lib/x86_64-linux-gnu/sasl2/libplain.so",
}

ISSUER = "https://issuer.example.test"
JWT_SECRET = b"saslgate-e2e-signing-secret-0123456789"
PASSWORD = "secret"


def require_packages():
    """Fails (never skips) with the names of missing Debian packages."""
    missing = [pkg for pkg, path in REQUIRED.items() if not os.path.exists(path)]
    if missing:
        raise RuntimeError(
            "end-to-end tests need these Debian packages: %s "
            "(run contrib/install-deps)" % " ".join(missing))
    if os.geteuid() != 0:
        raise RuntimeError("end-to-end tests start Postfix and must run as root")
    for prog in ("saslgatectl", "saslgate-policyd", "saslgate-milter"):
        if not (BUILD / prog).exists():
            raise RuntimeError("%s is not built in %s (run make)" % (prog, BUILD))


def free_port(host="127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError("timed out waiting for %s" % what)


def pid_alive(pid):
    """True while the process runs. An exited daemon (Dovecot, Postfix's
    master) waits as a zombie until PID 1 reaps it, which can take seconds
    here: it counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def stop_pid(pid, timeout=10.0):
    if not pid or not pid_alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    try:
        wait_for(lambda: not pid_alive(pid), timeout, "pid %d to exit" % pid)
    except TimeoutError:
        os.kill(pid, signal.SIGKILL)


def make_world_dir(prefix):
    """A directory the unprivileged postfix and dovecot users can traverse."""
    d = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    d.chmod(0o755)
    return d


def mint_jwt(user, lifetime=600):
    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    now = int(time.time())
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    # Issued a few seconds ago: Dovecot rejects an "iat" in the future, and its
    # time() reads the coarse clock, which can still show the previous second
    # a few milliseconds after Python's time.time() has moved on.
    claims = b64(json.dumps({"iss": ISSUER, "sub": user, "email": user, "iat": now - 5,
                             "nbf": now - 5, "exp": now + lifetime}).encode())
    signing_input = ("%s.%s" % (header, claims)).encode()
    sig = b64(hmac.new(JWT_SECRET, signing_input, hashlib.sha256).digest())
    return "%s.%s.%s" % (header, claims, sig)


class Dovecot:
    """Dovecot as a SASL server only: passwd-file for the password mechanisms,
    oauth2 with local JWT validation for XOAUTH2 and OAUTHBEARER."""

    def __init__(self, root, users, name="dovecot"):
        self.root = root / name
        self.base = self.root / "run"
        self.users = users
        self.socket = self.base / "auth-postfix"

    def _write_files(self):
        r = self.root
        for d in (r, self.base, r / "state", r / "keys" / "default" / "HS256"):
            d.mkdir(parents=True, exist_ok=True)
        (r / "keys" / "default" / "HS256" / "default").write_text(
            base64.b64encode(JWT_SECRET).decode())
        (r / "passwd").write_text(
            "".join("%s:{PLAIN}%s\n" % (u, PASSWORD) for u in self.users))
        (r / "oauth2.conf").write_text(
            "introspection_mode = local\n"
            "local_validation_key_dict = fs:posix:prefix=%s/keys/\n"
            "username_attribute = email\n"
            "issuers = %s\n" % (r, ISSUER))

    def _config(self):
        r = self.root
        return """
base_dir = {base}
state_dir = {state}
log_path = {root}/dovecot.log
instance_name = saslgate-e2e-{pid}-{name}
protocols =
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login cram-md5 xoauth2 oauthbearer
auth_failure_delay = 0
passdb {{
  driver = passwd-file
  mechanisms = plain login cram-md5
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {root}/oauth2.conf
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent allow_all_users=yes
}}
service auth {{
  unix_listener auth-postfix {{
    mode = 0660
    user = postfix
    group = postfix
  }}
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
""".format(base=self.base, state=r / "state", root=r, pid=os.getpid(),
           name="%s-%s" % (r.parent.name, r.name))

    def start(self):
        r = self.root
        self._write_files()
        (r / "dovecot.conf").write_text(self._config())
        # dovecot forks and keeps its stdio: never capture it through a pipe.
        with open(r / "start.log", "wb") as out:
            proc = subprocess.run(["dovecot", "-c", str(r / "dovecot.conf")],
                                  stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                  timeout=30)
        if proc.returncode != 0:
            raise RuntimeError("dovecot did not start: " +
                               (r / "start.log").read_text(errors="replace"))
        wait_for(self.socket.exists, 10, "the Dovecot auth socket")

    def master_pid(self):
        try:
            return int((self.base / "master.pid").read_text().strip())
        except (OSError, ValueError):
            return 0

    def stop(self):
        stop_pid(self.master_pid())

    def postfix_settings(self):
        return {"smtpd_sasl_type": "dovecot", "smtpd_sasl_path": str(self.socket)}


SNIPPET = REPO / "contrib" / "dovecot" / "95-saslgate-policy.conf"


def policy_snippet(url, api_header=None):
    """contrib/dovecot/95-saslgate-policy.conf as shipped, with this rig's URL,
    a random nonce and (api_header) the optional API key line uncommented.
    Every other line is kept, so the rig runs the documented settings; a
    setting the rig relies on that is missing from the snippet fails here."""
    values = {"auth_policy_server_url": url,
              "auth_policy_hash_nonce": os.urandom(16).hex()}
    out, seen = [], set()
    for line in SNIPPET.read_text().splitlines():
        commented = line.startswith("#")
        key = line.lstrip("#").partition("=")[0].strip()
        if key.startswith("auth_policy_") and " " not in key:
            seen.add(key)
            if key in values and not commented:
                line = "%s = %s" % (key, values[key])
            elif key == "auth_policy_server_api_header" and commented and api_header:
                line = "%s = %s" % (key, api_header)
        out.append(line)
    needed = {"auth_policy_server_url", "auth_policy_hash_nonce",
              "auth_policy_request_attributes", "auth_policy_check_before_auth",
              "auth_policy_reject_on_fail", "auth_policy_report_after_auth",
              "auth_policy_server_api_header"}
    if needed - seen:
        raise RuntimeError("%s lacks %s" % (SNIPPET, " ".join(sorted(needed - seen))))
    return "\n".join(out) + "\n"


class DovecotMail(Dovecot):
    """Dovecot serving IMAP and POP3 on free loopback ports, and SASL for
    Postfix, with the same passdbs as Dovecot above, asking saslgate's HTTP
    listener through the contrib/dovecot snippet before any passdb runs."""

    def __init__(self, root, users, policy_url, api_header=None, name="dovecot"):
        super().__init__(root, users, name)
        self.policy_url = policy_url
        self.api_header = api_header
        self.imap_port = free_port()
        self.pop3_port = free_port()

    def _write_files(self):
        super()._write_files()
        mail = self.root / "mail"
        mail.mkdir(exist_ok=True)
        pw = pwd.getpwnam("nobody")
        os.chown(mail, pw.pw_uid, pw.pw_gid)
        (self.root / "95-saslgate-policy.conf").write_text(
            policy_snippet(self.policy_url, self.api_header))

    def _config(self):
        conf = super()._config()
        conf = conf.replace("protocols =\n", "protocols = imap pop3\n")
        conf = conf.replace("home=/nonexistent", "home=%s/mail/%%u" % self.root)
        assert "protocols = imap pop3" in conf and "/mail/%u" in conf
        # auth_verbose: passdbs log "Password mismatch", which shows the
        # tests whether a password was ever checked.
        return conf + """
auth_verbose = yes
listen = 127.0.0.1
mail_location = maildir:~/Maildir
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
!include {root}/95-saslgate-policy.conf
""".format(imap=self.imap_port, pop3=self.pop3_port, root=self.root)

    def start(self):
        super().start()
        for port in (self.imap_port, self.pop3_port):
            wait_for(lambda: port_open(port), 10, "Dovecot to listen on port %d" % port)

    def log(self):
        try:
            return (self.root / "dovecot.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


class CyrusSasl:
    """Cyrus SASL inside smtpd with a private sasldb (auxprop)."""

    MECHS = "PLAIN LOGIN CRAM-MD5 DIGEST-MD5 SCRAM-SHA-256"

    def __init__(self, root, users, realm="example.test"):
        self.root = root
        self.users = users
        self.realm = realm
        self.sasldb = root / "sasldb2"

    def start(self):
        for user in self.users:
            name, _, realm = user.partition("@")
            subprocess.run(["saslpasswd2", "-p", "-f", str(self.sasldb), "-c",
                            "-u", realm or self.realm, name],
                           input=PASSWORD.encode(), check=True, timeout=30)
        os.chown(self.sasldb, 0, grp.getgrnam("postfix").gr_gid)
        self.sasldb.chmod(0o640)

    def configure(self, config_dir):
        sasl = config_dir / "sasl"
        sasl.mkdir(exist_ok=True)
        (sasl / "smtpd.conf").write_text(
            "pwcheck_method: auxprop\nauxprop_plugin: sasldb\n"
            "sasldb_path: %s\nmech_list: %s\n" % (self.sasldb, self.MECHS))

    def stop(self):
        pass

    def postfix_settings(self):
        return {"smtpd_sasl_type": "cyrus", "smtpd_sasl_path": "smtpd",
                "smtpd_sasl_local_domain": ""}


def contrib_settings(name):
    """The settings of a shipped contrib/postfix/ main.cf snippet, as a dict
    (continuation lines joined), so that the rig runs what is documented."""
    settings, key = {}, None
    for line in (REPO / "contrib" / "postfix" / name).read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0] in " \t" and key:
            settings[key] += " " + line.strip()
            continue
        key, _, value = line.partition("=")
        key = key.strip()
        settings[key] = value.strip()
    return settings


class Postfix:
    """A private Postfix instance: a submission listener on a free loopback port
    that relays only for SASL-authenticated clients and delivers to discard:,
    logging to its own maillog."""

    def __init__(self, root, sasl, policy=None, milter=None, policy_default_action=None):
        """policy/milter: the saslgate endpoints (None: that hook is off). The
        other policy service and milter settings come from contrib/postfix/."""
        self.root = root
        self.config = root / "postfix"
        self.queue = root / "queue"
        self.data = root / "data"
        self.maillog = root / "maillog"
        self.port = free_port()
        self.sasl = sasl
        self.policy = policy
        self.milter = milter
        self.policy_default_action = policy_default_action

    def _main_cf(self):
        restrictions = []
        if self.policy:
            restrictions.append("check_policy_service " + self.policy)
        restrictions += ["permit_sasl_authenticated", "reject"]
        shipped = {}
        if self.policy:
            shipped.update(contrib_settings("main.cf.policyd"))
            # The documented list, with this rig's socket.
            documented = [w.strip() for w in
                          shipped.pop("saslgate_submission_restrictions").split(",")]
            assert documented[0].startswith("check_policy_service ")
            assert documented[1:] == restrictions[1:], documented
        if self.milter:
            shipped.update(contrib_settings("main.cf.milter"))
            shipped.pop("smtpd_milters")
        settings = {
            "compatibility_level": "3.6",
            "config_directory": self.config,
            "queue_directory": self.queue,
            "data_directory": self.data,
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": "mx.example.test",
            "mydomain": "example.test",
            "myorigin": "example.test",
            "mydestination": "",
            "mynetworks": "192.0.2.1/32",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "maillog_file": self.maillog,
            "maillog_file_prefixes": self.root,
            "default_transport": "discard:delivered",
            "relay_transport": "discard:delivered",
            "local_transport": "discard:delivered",
            "smtp_dns_support_level": "disabled",
            "smtpd_peername_lookup": "no",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "smtpd_sasl_auth_enable": "yes",
            "smtpd_tls_auth_only": "no",
            "smtpd_tls_security_level": "none",
            "smtpd_relay_restrictions": "",
            "smtpd_recipient_restrictions": ", ".join(restrictions),
            "smtpd_milters": self.milter or "",
            "smtpd_delay_reject": "yes",
            "biff": "no",
            "readme_directory": "no",
            "html_directory": "no",
            "shlib_directory": "/usr/lib/postfix",
            "daemon_directory": "/usr/lib/postfix/sbin",
            "meta_directory": "/etc/postfix",
        }
        settings.update(shipped)
        if self.policy_default_action:
            settings["smtpd_policy_service_default_action"] = self.policy_default_action
        settings.update(self.sasl.postfix_settings())
        return "".join("%s = %s\n" % (k, v) for k, v in settings.items())

    def _master_cf(self):
        return (
            "127.0.0.1:%d inet n - n - - smtpd\n"
            "pickup unix n - n 60 1 pickup\n"
            "cleanup unix n - n - 0 cleanup\n"
            "qmgr unix n - n 300 1 qmgr\n"
            "rewrite unix - - n - - trivial-rewrite\n"
            "bounce unix - - n - 0 bounce\n"
            "defer unix - - n - 0 bounce\n"
            "trace unix - - n - 0 bounce\n"
            "verify unix - - n - 1 verify\n"
            "flush unix n - n 1000? 0 flush\n"
            "proxymap unix - - n - - proxymap\n"
            "smtp unix - - n - - smtp\n"
            "relay unix - - n - - smtp\n"
            "showq unix n - n - - showq\n"
            "error unix - - n - - error\n"
            "retry unix - - n - - error\n"
            "discard unix - - n - - discard\n"
            "anvil unix - - n - 1 anvil\n"
            "scache unix - - n - 1 scache\n"
            "postlog unix-dgram n - n - 1 postlogd\n" % self.port)

    def start(self):
        for d in (self.config, self.queue, self.data):
            d.mkdir(parents=True, exist_ok=True)
        pw = pwd.getpwnam("postfix")
        os.chown(self.data, pw.pw_uid, pw.pw_gid)
        (self.config / "main.cf").write_text(self._main_cf())
        (self.config / "master.cf").write_text(self._master_cf())
        if isinstance(self.sasl, CyrusSasl):
            self.sasl.configure(self.config)
        old = time.time() - 10
        for f in ("main.cf", "master.cf"):
            os.utime(self.config / f, (old, old))
        self.maillog.touch()
        with open(self.root / "postfix-start.log", "wb") as out:
            proc = subprocess.run(["postfix", "-c", str(self.config), "start"],
                                  stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                  timeout=60)
        if proc.returncode != 0:
            raise RuntimeError("postfix start failed: %s\nmaillog:\n%s" % (
                (self.root / "postfix-start.log").read_text(errors="replace"),
                self.maillog.read_text(errors="replace")))
        wait_for(self._listening, 15, "Postfix to listen on port %d" % self.port)

    def _listening(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.settimeout(5)
                return s.recv(512).startswith(b"220")
        except OSError:
            return False

    def master_pid(self):
        pidfile = self.queue / "pid" / "master.pid"
        try:
            return int(pidfile.read_text().strip())
        except (OSError, ValueError):
            return 0

    def stop(self):
        pid = self.master_pid()
        subprocess.run(["postfix", "-c", str(self.config), "stop"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60)
        if pid:
            wait_for(lambda: not pid_alive(pid), 15, "Postfix master to exit")

    def log(self):
        return self.maillog.read_text(errors="replace")

    def delivered(self, queue_id_or_rcpt):
        """Maillog lines of discard: deliveries for a recipient or queue id."""
        return [line for line in self.log().splitlines()
                if "status=sent" in line and "delivered" in line and queue_id_or_rcpt in line]

    def wait_delivered(self, rcpt, count=1, timeout=15):
        return wait_for(lambda: len(self.delivered("to=<%s>" % rcpt)) >= count and
                        self.delivered("to=<%s>" % rcpt), timeout,
                        "delivery to %s in the maillog" % rcpt)


class Saslgate:
    """The saslgate store and daemons for one rig."""

    def __init__(self, root):
        self.root = root
        self.store = root / "store"
        self.run_dir = root / "saslgate"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir.chmod(0o755)
        self.policy_socket = self.run_dir / "policyd.sock"
        self.milter_socket = self.run_dir / "milter.sock"
        self.procs = {}

    def ctl(self, *args, check=True):
        proc = subprocess.run([str(BUILD / "saslgatectl"), "-d", str(self.store)] +
                              [str(a) for a in args], capture_output=True, text=True,
                              timeout=60)
        if check and proc.returncode != 0:
            raise RuntimeError("saslgatectl %s failed (%d): %s%s" % (
                " ".join(map(str, args)), proc.returncode, proc.stdout, proc.stderr))
        return proc

    def ctl_json(self, *args):
        return json.loads(self.ctl("--json", *args).stdout)

    def init(self, *args):
        return self.ctl("init", *args)

    def _start(self, name, argv, socket_path):
        log = open(self.run_dir / ("%s.log" % name), "ab")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.procs[name] = proc
        try:
            wait_for(lambda: socket_path.exists() or proc.poll() is not None, 10,
                     "%s socket" % name)
        except TimeoutError:
            pass
        if proc.poll() is not None or not socket_path.exists():
            raise RuntimeError("%s did not start: %s" % (
                name, (self.run_dir / ("%s.log" % name)).read_text(errors="replace")))
        return proc

    def start_policyd(self, http_ports=(), settings=None):
        """http_ports: also listen for Dovecot's auth policy requests on
        http:127.0.0.1:PORT; settings: more -o KEY=VALUE."""
        argv = [str(BUILD / "saslgate-policyd"), "-f", "-d", str(self.store),
                "-o", "socket_mode=0666", "-o", "heartbeat_interval=1s",
                "-o", "activity_flush_ms=50",
                "-l", "unix:%s" % self.policy_socket]
        for port in http_ports:
            argv += ["-l", "http:127.0.0.1:%d" % port]
        for key, value in (settings or {}).items():
            argv += ["-o", "%s=%s" % (key, value)]
        proc = self._start("policyd", argv, self.policy_socket)
        for port in http_ports:
            wait_for(lambda: port_open(port) or proc.poll() is not None, 10,
                     "saslgate-policyd to listen on http port %d" % port)
            if proc.poll() is not None:
                raise RuntimeError("policyd exited: %s" % (
                    (self.run_dir / "policyd.log").read_text(errors="replace")))
        return proc

    def start_milter(self):
        return self._start("milter", [
            str(BUILD / "saslgate-milter"), "-f", "-d", str(self.store),
            "-o", "socket_mode=0666", "-o", "heartbeat_interval=1s",
            "-o", "activity_flush_ms=50",
            "-p", "unix:%s" % self.milter_socket], self.milter_socket)

    def stop(self, name):
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for sock in (self.policy_socket if name == "policyd" else self.milter_socket,):
            if sock.exists():
                sock.unlink()

    def stop_all(self):
        for name in list(self.procs):
            self.stop(name)

    def policy_endpoint(self):
        return "unix:%s" % self.policy_socket

    def milter_endpoint(self):
        return "unix:%s" % self.milter_socket

    def decisions(self):
        """Decision rows recorded in activity.db, oldest first."""
        import sqlite3
        db = self.store / "activity.db"
        if not db.exists():
            return []
        con = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=5)
        con.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in con.execute("SELECT * FROM decisions ORDER BY id")]
        except sqlite3.OperationalError:
            return []
        finally:
            con.close()

    def wait_decisions(self, count, timeout=10):
        return wait_for(lambda: len(self.decisions()) >= count and self.decisions(), timeout,
                        "%d decision rows in activity.db" % count)
