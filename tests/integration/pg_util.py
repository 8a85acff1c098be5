"""A private PostgreSQL server for the PostgreSQL store tests: initdb and
pg_ctl from Debian's postgresql package, in a temporary directory, as an
unprivileged user (PostgreSQL refuses to run as root, and CI runs as root:
then the server runs as "nobody"), on a free loopback port, without fsync.
No system service is touched."""

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PG_BIN = os.environ.get("SASLGATE_PG_BIN", "/usr/lib/postgresql/15/bin")
ROLES_SQL = os.path.join(ROOT, "schema", "pg", "roles.sql")
DATABASE = "saslgate"
SUPERUSER = "postgres"


def missing():
    """Why the server cannot be run here, or None."""
    for tool in ("initdb", "pg_ctl", "postgres", "psql"):
        if not os.access(os.path.join(PG_BIN, tool), os.X_OK):
            return "%s/%s not found (apt-get install postgresql)" % (PG_BIN, tool)
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "runuser not found (needed to run PostgreSQL as nobody)"
    return None


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """initdb + pg_ctl start in a temporary directory; stop() and remove()."""

    def __init__(self, primary=None):
        """A new cluster, or with primary a hot standby of it (pg_basebackup -R:
        streaming replication)."""
        self.base = tempfile.mkdtemp(prefix="sgpg")
        self.data = os.path.join(self.base, "data")
        self.log_path = os.path.join(self.base, "postgres.log")
        self.port = free_port()
        self.as_user = []
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.chown(self.base, nobody.pw_uid, nobody.pw_gid)
            self.as_user = ["runuser", "-u", "nobody", "--"]
        if primary is None:
            self._run(["initdb", "-D", self.data, "-U", SUPERUSER, "--auth=trust", "-E",
                       "UTF8", "--no-sync", "--no-instructions"])
        else:
            self._run(["pg_basebackup", "-D", self.data, "-R", "-X", "stream", "--no-sync",
                       "-h", "127.0.0.1", "-p", str(primary.port), "-U", SUPERUSER])

    def _run(self, args, check=True, timeout=60):
        proc = subprocess.run(self.as_user + [os.path.join(PG_BIN, args[0])] + args[1:],
                              capture_output=True, text=True, timeout=timeout, cwd=self.base)
        if check and proc.returncode != 0:
            raise AssertionError("%s failed (%d): %s%s" % (args[0], proc.returncode,
                                                          proc.stdout, proc.stderr))
        return proc

    def start(self):
        options = ("-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                   "-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories=%s"
                   % (self.port, self.base))
        started = time.monotonic()
        self._run(["pg_ctl", "-D", self.data, "-l", self.log_path, "-o", options, "-w",
                   "-t", "30", "start"])
        return time.monotonic() - started

    def stop(self):
        return self._run(["pg_ctl", "-D", self.data, "-m", "fast", "-w", "-t", "30", "stop"],
                         check=False)

    def remove(self):
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def uri(self, user, database=DATABASE):
        return "postgresql://%s@127.0.0.1:%d/%s" % (user, self.port, database)

    def psql(self, sql=None, user=SUPERUSER, database=DATABASE, file=None, check=True):
        """Runs SQL (or a file) with psql; returns the CompletedProcess. Output is
        unaligned, tuples only."""
        args = [os.path.join(PG_BIN, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                "-h", "127.0.0.1", "-p", str(self.port), "-U", user, "-d", database]
        args += ["-f", file] if file else ["-c", sql]
        proc = subprocess.run(args, capture_output=True, text=True, timeout=30,
                              env=dict(os.environ, PGCONNECT_TIMEOUT="5"))
        if check and proc.returncode != 0:
            raise AssertionError("psql %s: %s" % (sql or file, proc.stderr))
        return proc

    def setup_database(self):
        """The saslgate database and the roles of schema/pg/roles.sql, as a
        DBA makes them before "saslgatectl --store URI init"."""
        self.psql("CREATE DATABASE %s" % DATABASE, database="postgres")
        self.psql(file=ROLES_SQL)


@contextlib.contextmanager
def private_server(init_ctl=None):
    """A started server with the saslgate database and the roles of
    schema/pg/roles.sql; with init_ctl (saslgatectl's path) also
    "saslgatectl --store URI init" as saslgate_admin. Removed at the end:
    a module fixture is `with private_server(...) as server: yield server`."""
    server = PostgresServer()
    try:
        server.start()
        server.setup_database()
        if init_ctl is not None:
            proc = subprocess.run([init_ctl, "-d", "/nonexistent", "--store",
                                   server.uri("saslgate_admin"), "init"],
                                  capture_output=True, text=True, timeout=30)
            assert proc.returncode == 0, proc.stdout + proc.stderr
        yield server
    finally:
        server.remove()
