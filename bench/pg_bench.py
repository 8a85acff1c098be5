#!/usr/bin/env python3
"""The PostgreSQL store's benchmarks (issue 15), run by bench/run.sh
(BENCH_ONLY=pg) on a private PostgreSQL (tests/integration/pg_util.py:
initdb and pg_ctl in a temporary directory, as "nobody" when run as root):

  throughput  saslgate-policyd on --store postgresql://... against
              saslgate-policyd on the SQLite store, the same policy
              (bench/make_store.py with 100 exceptions, exported and
              imported), bench/policyd_load, 100 connections, alternating
              which runs first; ratio PostgreSQL / SQLite per round.
  pickup      3 saslgate-policyd and 1 saslgate-milter (each its own -d
              DIR) on the one PostgreSQL; CHANGES times an exception for
              one user is added or removed with saslgatectl --store URI; for
              each daemon, the time from saslgatectl's return to the first
              answer from the new policy (each daemon probed in a tight
              loop: policyd over its socket, the milter with whole
              sessions from tests/integration/milter_wire.py).
  rebuild     100,000 exceptions put into PostgreSQL by SQL (COPY, the
              generation bumped and NOTIFYed as saslgatectl does), then
              changes committed by SQL while bench/policyd_load runs 50
              connections and one probe connection asks in a tight loop:
              commit -> new policy served, the probe's latency inside that
              window against outside it, policyd_load's p99/max in runs
              with a change against runs without one.

usage: pg_bench.py BUILDDIR WORKDIR [ROUNDS] [SECONDS]
environment: PG_PARTS (default "throughput,pickup,rebuild"), PG_CHANGES
(default 50), SASLGATE_PG_BIN (default /usr/lib/postgresql/15/bin).
Exit status 0; 77 when PostgreSQL cannot be run here (the reason printed).
"""

import json
import os
import re
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))

from pg_util import PG_BIN, PostgresServer, missing  # noqa: E402
from milter_wire import SMFIR_REPLYCODE, session  # noqa: E402

ADMIN = "saslgate_admin"
DAEMON = "saslgate_daemon"
PROBE_USER = "probe@example.test"
PROBE_IP = "192.0.2.10"  # outside the store's locations: PLAIN is blocked
CHANNEL = "saslgate_policy"  # STORE_PG_CHANNEL
BIG = 100000


def pct(values, p):
    """The nearest-rank percentile of bench/policyd_load."""
    v = sorted(values)
    return v[int(p * (len(v) - 1) + 0.5)] if v else 0.0


def fields(line):
    return dict(kv.split("=", 1) for kv in line.split() if "=" in kv)


def cpu_ticks(pid):
    """User + system CPU of the process so far, all threads, in clock ticks."""
    with open("/proc/%d/stat" % pid) as f:
        stat = f.read().rsplit(")", 1)[1].split()
    return int(stat[11]) + int(stat[12])


def loadavg():
    return "load=%.2f/%.2f/%.2f" % os.getloadavg()


def ms(s):
    return "%.1f" % (1000.0 * s)


class Bench:
    def __init__(self, build, work, rounds, secs):
        self.build, self.work, self.rounds, self.secs = build, work, rounds, secs
        self.ctl_path = os.path.join(build, "saslgatectl")
        self.pg = None
        self.procs = []

    # --- processes --------------------------------------------------------

    def path(self, *parts):
        return os.path.join(self.work, *parts)

    def ctl(self, *args, sqlite_dir=None, check=True):
        """saslgatectl --store URI ARGS, or -d sqlite_dir ARGS."""
        argv = [self.ctl_path, "-d", sqlite_dir or self.path("ctl")]
        if sqlite_dir is None:
            argv += ["--store", self.pg.uri(ADMIN)]
        proc = subprocess.run(argv + list(args), capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            raise RuntimeError("saslgatectl %s: %s%s" % (" ".join(args), proc.stdout,
                                                        proc.stderr))
        return proc

    def start(self, program, name, store, settings=()):
        """saslgate-policyd or saslgate-milter -f on unix:WORK/NAME/sock with
        -d WORK/NAME; store: a URI, or None for the SQLite store in the DIR."""
        d = self.path(name)
        os.makedirs(d, exist_ok=True)
        sock = os.path.join(d, "sock")
        for f in os.listdir(d):  # a fresh activity.db for every run
            if f == "sock" or f.startswith("activity.db"):
                os.unlink(os.path.join(d, f))
        flag = "-l" if program == "saslgate-policyd" else "-p"
        argv = [os.path.join(self.build, program), "-f", "-d", d, flag, "unix:" + sock,
                "-o", "socket_mode=0666"]
        for s in settings:
            argv += ["-o", s]
        # each store directory its own host name, as a fleet's hosts have
        argv += ["-o", "host_name=" + name]
        if store:
            argv += ["--store", store]
        log = open(os.path.join(d, program + ".log"), "ab")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        proc.sock, proc.dir, proc.name = sock, d, name
        self.procs.append(proc)
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise RuntimeError("%s %s exited with %d, see %s" %
                                   (program, name, proc.returncode, log.name))
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.connect(sock)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("%s %s did not start" % (program, name))
                time.sleep(0.02)
        return proc

    def stop(self, proc):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc in self.procs:
            self.procs.remove(proc)

    def load(self, sock, connections, seconds, warmup=1.0):
        out = subprocess.run([os.path.join(self.build, "bench", "policyd_load"), "-l",
                              "unix:" + sock, "-c", str(connections), "-d", str(seconds),
                              "-w", str(warmup)], capture_output=True, text=True,
                             timeout=seconds + warmup + 30)
        if out.returncode != 0:
            raise RuntimeError("policyd_load: %s%s" % (out.stdout, out.stderr))
        return fields(out.stdout)

    def measured_load(self, proc, connections, seconds):
        """A second of warm-up, then a measured run; adds cpu_us: the
        daemon's CPU (all threads, user + system) per request of that run."""
        self.load(proc.sock, connections, 1, 0)
        t0 = cpu_ticks(proc.pid)
        out = self.load(proc.sock, connections, seconds, 0)
        ticks = cpu_ticks(proc.pid) - t0
        out["cpu_us"] = "%.1f" % (ticks * 1e6 / os.sysconf("SC_CLK_TCK") /
                                  max(1, int(out["requests"])))
        return out

    def heartbeat(self, proc):
        """(generation, last_rebuild_us) of the daemon's newest heartbeat: in
        DIR/activity.db, else in PostgreSQL's fleet_heartbeats."""
        try:
            db = sqlite3.connect("file:%s?mode=ro" % os.path.join(proc.dir, "activity.db"),
                                 uri=True, timeout=5)
            try:
                row = db.execute("SELECT generation, last_rebuild_us FROM heartbeats "
                                 "WHERE pid = ? ORDER BY last_seen DESC LIMIT 1",
                                 (proc.pid,)).fetchone()
            finally:
                db.close()
        except sqlite3.OperationalError:  # not created yet
            row = None
        if row is None:  # a daemon that sends its heartbeats to PostgreSQL instead
            got = self.pg.psql("SELECT generation, last_rebuild_us FROM fleet_heartbeats "
                               "WHERE pid = %d ORDER BY last_seen DESC LIMIT 1" % proc.pid,
                               check=False).stdout.strip()
            row = tuple(int(v) if v else None for v in got.split("|")) if got else None
        return row if row else (None, None)

    def wait_generation(self, proc, timeout):
        """Until the daemon's heartbeat shows PostgreSQL's generation; returns it."""
        gen, deadline = self.generation(), time.monotonic() + timeout
        while self.heartbeat(proc)[0] != gen:
            if time.monotonic() > deadline:
                raise RuntimeError("%s not at generation %d after %g s" % (proc.name, gen,
                                                                         timeout))
            time.sleep(0.05)
        return gen

    def generation(self):
        return int(self.pg.psql("SELECT value FROM settings WHERE key = 'generation'")
                   .stdout.strip())

    # --- the stores ---------------------------------------------------------

    def make_stores(self):
        """WORK/sqlite: bench/make_store.py with 100 exceptions; PostgreSQL:
        init, then the same policy imported from its export."""
        env = dict(os.environ, SASLGATE_BUILDDIR=self.build)
        os.makedirs(self.path("ctl"), exist_ok=True)
        for name, n in (("sqlite", 100), ("big", BIG)):
            os.makedirs(self.path(name), exist_ok=True)
            subprocess.run([sys.executable, os.path.join(SRC, "bench", "make_store.py"),
                            self.path(name), str(n)], check=True, env=env)
        export = self.ctl("export", sqlite_dir=self.path("sqlite")).stdout
        with open(self.path("policy.json"), "w") as f:
            f.write(export)
        self.ctl("init")
        self.ctl("import", self.path("policy.json"))
        mine = json.loads(export)
        theirs = json.loads(self.ctl("export").stdout)
        differ = [k for k in mine if k != "exported_at" and mine[k] != theirs.get(k)]
        print("stores: SQLite %s and PostgreSQL hold the same policy (10 policies, 100 "
              "exceptions): %s" % (self.path("sqlite"),
                                   "yes" if not differ else "NO, differ in " + ", ".join(differ)))

    # --- 1. throughput ----------------------------------------------------

    def throughput(self):
        print("\n== pg throughput: saslgate-policyd --store postgresql:// vs the SQLite store, "
              "100 connections, %gs x %d rounds (%s)" % (self.secs, self.rounds, loadavg()))
        uri = self.pg.uri(DAEMON)
        ratios, cpus, pairs = [], [], []
        for r in range(1, self.rounds + 1):
            got = {}
            order = ("sqlite", "pg") if r % 2 else ("pg", "sqlite")
            for which in order:
                if which == "pg":
                    p = self.start("saslgate-policyd", "tp-pg", uri)
                else:
                    p = self.start("saslgate-policyd", "sqlite", None)
                got[which] = self.measured_load(p, 100, self.secs)
                self.stop(p)
            s, g = got["sqlite"], got["pg"]
            ratio = float(g["rps"]) / float(s["rps"])
            cpu = float(g["cpu_us"]) / max(0.1, float(s["cpu_us"]))
            ratios.append(ratio)
            cpus.append(cpu)
            pairs.append((float(g["rps"]), float(s["rps"])))
            print("round %d (%s first): sqlite rps=%s p50_us=%s p99_us=%s cpu_us=%s | pg rps=%s "
                  "p50_us=%s p99_us=%s cpu_us=%s | ratio=%.2f cpu_ratio=%.2f (%s)" % (
                      r, order[0], s["rps"], s["p50_us"], s["p99_us"], s["cpu_us"], g["rps"],
                      g["p50_us"], g["p99_us"], g["cpu_us"], ratio, cpu, loadavg()))
        print("pg vs sqlite: median ratio %.2f over %d rounds (lowest %.2f, highest %.2f), "
              "summed rates %.2f; goal >= 0.95. CPU a request, pg / sqlite: median %.2f "
              "(%.2f-%.2f)" % (
                  statistics.median(ratios), len(ratios), min(ratios), max(ratios),
                  sum(a for a, _ in pairs) / sum(b for _, b in pairs),
                  statistics.median(cpus), min(cpus), max(cpus)))

    # --- 2. pickup --------------------------------------------------------

    def pickup(self):
        changes = int(os.environ.get("PG_CHANGES", "50"))
        print("\n== pg pickup: 3 saslgate-policyd + 1 saslgate-milter on one PostgreSQL, %d "
              "changes (saslgatectl --store URI exception add/remove --user %s) (%s)"
              % (changes, PROBE_USER, loadavg()))
        uri = self.pg.uri(DAEMON)
        daemons = [self.start("saslgate-policyd", "mx%d" % i, uri) for i in (1, 2, 3)]
        daemons.append(self.start("saslgate-milter", "milter1", uri))
        probers = [Prober(d, d.name.startswith("milter")) for d in daemons]
        for p in probers:
            p.start()
        samples = {p.daemon.name: [] for p in probers}
        already = 0
        ctl_s = []
        exc_id = None
        try:
            if not all(p.wait_state("block", 10) for p in probers):
                raise RuntimeError("the fleet does not block %s PLAIN from %s at the start"
                                   % (PROBE_USER, PROBE_IP))
            for i in range(changes):
                want = "allow" if exc_id is None else "block"
                for p in probers:
                    p.expect(want)
                t0 = time.monotonic()
                if exc_id is None:
                    out = self.ctl("--json", "exception", "add", "--user", PROBE_USER,
                                   "--permanent", "--reason", "pickup bench").stdout
                    exc_id = json.loads(out)["id"]
                else:
                    self.ctl("exception", "remove", str(exc_id))
                    exc_id = None
                t1 = time.monotonic()
                ctl_s.append(t1 - t0)
                deadline = t1 + 10
                for p in probers:
                    seen = p.wait_seen(deadline)
                    if seen is None:
                        raise RuntimeError("%s did not pick change %d up in 10 s"
                                           % (p.daemon.name, i + 1))
                    if seen <= t1:
                        already += 1
                    samples[p.daemon.name].append(max(0.0, seen - t1))
            if exc_id is not None:  # an odd number of changes: leave the policy as found
                self.ctl("exception", "remove", str(exc_id))
        finally:
            for p in probers:
                p.stop()
            for d in daemons:
                self.stop(d)
        self.log_problems(daemons)
        every = [s for v in samples.values() for s in v]
        worst = max(range(changes), key=lambda i: max(v[i] for v in samples.values()))
        print("slowest change: #%d (saslgatectl %s ms): %s" % (
            worst + 1, ms(ctl_s[worst]),
            ", ".join("%s %s ms" % (n, ms(v[worst])) for n, v in samples.items())))
        for name, v in samples.items():
            print("%-8s p50_ms=%s p99_ms=%s max_ms=%s probes=%d" % (
                name, ms(pct(v, 0.5)), ms(pct(v, 0.99)), ms(max(v)),
                [p for p in probers if p.daemon.name == name][0].count))
        print("pickup after saslgatectl returned, %d samples (%d changes x %d daemons): "
              "p50_ms=%s p90_ms=%s p99_ms=%s max_ms=%s; %d already new at the return; "
              "saslgatectl took p50_ms=%s max_ms=%s; goal p99 < 1000 ms (%s)" % (
                  len(every), changes, len(daemons), ms(pct(every, 0.5)), ms(pct(every, 0.9)),
                  ms(pct(every, 0.99)), ms(max(every)), already, ms(pct(ctl_s, 0.5)),
                  ms(max(ctl_s)), loadavg()))

    def log_problems(self, daemons):
        """The daemons' complaints (an outage of the store, an error): a
        pickup that waited for a reconnect shows here."""
        for d in daemons:
            path = [os.path.join(d.dir, f) for f in os.listdir(d.dir) if f.endswith(".log")][0]
            with open(path, errors="replace") as f:
                bad = [line.strip() for line in f
                       if "unavailable" in line or "error" in line.lower()]
            if bad:
                print("%s logged %d problem(s), the first: %s" % (d.name, len(bad), bad[0]))

    # --- 3. rebuild with 100,000 exceptions ---------------------------------

    def bulk_load(self):
        """Every exception replaced by the 100,000 of WORK/big (make_store.py)
        in one transaction: COPY, the id sequence moved past them, the
        generation bumped and NOTIFYed, as saslgatectl's push does."""
        cols = ("id, policy, user_pattern, group_name, location, mechs, reason, created_by, "
                "created_at, expires_at")
        db = sqlite3.connect(self.path("big", "policy.db"))
        rows = db.execute("SELECT %s FROM exceptions ORDER BY id" % cols).fetchall()
        db.close()
        data = self.path("exceptions.copy")
        with open(data, "w") as f:
            for row in rows:
                vals = ["\\N" if v is None else str(v) for v in row]
                assert not any(c in v for v in vals for c in "\t\n") \
                    and all("\\" not in v for v in vals if v != "\\N")
                f.write("\t".join(vals) + "\n")
        sql = self.path("bulk.sql")
        with open(sql, "w") as f:
            f.write("DELETE FROM exceptions;\n"
                    "\\copy exceptions (%s) FROM '%s'\n"
                    "SELECT setval(pg_get_serial_sequence('exceptions', 'id'), "
                    "GREATEST((SELECT max(id) FROM exceptions), "
                    "(SELECT last_value FROM exceptions_id_seq)));\n"
                    "UPDATE settings SET value = (value::bigint + 1)::text "
                    "WHERE key = 'generation';\n"
                    "SELECT pg_notify('%s', value) FROM settings WHERE key = 'generation';\n"
                    % (cols, data, CHANNEL))
        t0 = time.monotonic()
        subprocess.run([os.path.join(PG_BIN, "psql"), "-X", "-q", "-1", "-v", "ON_ERROR_STOP=1",
                        "-h", "127.0.0.1", "-p", str(self.pg.port), "-U", ADMIN, "-d",
                        "saslgate", "-f", sql], check=True, capture_output=True, timeout=120)
        return time.monotonic() - t0, len(rows)

    def rebuild(self):
        reps = self.rounds
        print("\n== pg rebuild: %d exceptions in PostgreSQL, %d changes by SQL under bench/"
              "policyd_load (50 connections) and a probe connection (%s)"
              % (BIG, reps, loadavg()))
        p = self.start("saslgate-policyd", "rebuild", self.pg.uri(DAEMON),
                       ("heartbeat_interval=1s",))
        admin = Psql(self.pg, ADMIN)
        probe = Prober(p, False, record=True)
        probe.start()
        try:
            if not probe.wait_state("block", 10):
                raise RuntimeError("policyd does not block the probe at the start")
            probe.expect("block")
            t0 = time.monotonic()
            took, n = self.bulk_load()
            gen = self.wait_generation(p, 60)
            print("bulk load: %d exceptions by COPY in one transaction: %.2f s; policyd at "
                  "generation %d (heartbeat) %.2f s after the load began, snapshot build "
                  "last_rebuild_ms=%.1f" % (n, took, gen, time.monotonic() - t0,
                                            self.heartbeat(p)[1] / 1000.0))
            # one change through saslgatectl, for its own cost on this store
            c0 = time.monotonic()
            out = self.ctl("--json", "exception", "add", "--user", "ctl@example.test",
                           "--permanent", "--reason", "rebuild bench").stdout
            print("saslgatectl --store URI exception add on %d exceptions: %.2f s"
                  % (n + 1, time.monotonic() - c0))
            self.ctl("exception", "remove", str(json.loads(out)["id"]))
            self.wait_generation(p, 60)
            windows, stalls, outside, quiet, loaded = [], [], [], [], []
            added = False
            for r in range(1, reps + 1):
                for kind in (("quiet", "change") if r % 2 else ("change", "quiet")):
                    probe.samples = []
                    loader = Loader(self, p.sock, 50, 3.0, 0.5)
                    loader.start()
                    time.sleep(1.5)
                    if kind == "quiet":
                        loader.join()
                        out = loader.result
                        quiet.append(out)
                        lat = [b - a for a, b, _ in probe.samples]
                        print("round %d quiet : load p99_us=%s max_us=%s rps=%s | probe "
                              "requests=%d p99_ms=%s max_ms=%s (%s)" % (
                                  r, out["p99_us"], out["max_us"], out["rps"], len(lat),
                                  ms(pct(lat, 0.99)), ms(max(lat)), loadavg()))
                        continue
                    want = "block" if added else "allow"
                    probe.expect(want)
                    if added:
                        admin.change("DELETE FROM exceptions WHERE user_pattern = '%s'"
                                     % PROBE_USER)
                    else:
                        admin.change("INSERT INTO exceptions (user_pattern, reason, created_by, "
                                     "created_at) VALUES ('%s', 'rebuild bench', 'bench', "
                                     "extract(epoch FROM now())::bigint)" % PROBE_USER)
                    t_c = time.monotonic()
                    added = not added
                    seen = probe.wait_seen(t_c + 30)
                    if seen is None:
                        raise RuntimeError("the change was not picked up in 30 s")
                    loader.join()
                    out = loader.result
                    loaded.append(out)
                    inside = [b - a for a, b, _ in probe.samples if b >= t_c and a <= seen]
                    rest = [b - a for a, b, _ in probe.samples if not (b >= t_c and a <= seen)]
                    windows.append(max(0.0, seen - t_c))
                    stalls.append(max(inside) if inside else 0.0)
                    outside.extend(rest)
                    self.wait_generation(p, 10)  # its heartbeat has the rebuild's figure
                    print("round %d change: commit -> new policy served %s ms, snapshot build "
                          "last_rebuild_ms=%.1f | load p99_us=%s max_us=%s rps=%s | probe in "
                          "the window: requests=%d max_ms=%s; outside: requests=%d p99_ms=%s "
                          "max_ms=%s (%s)" % (
                              r, ms(windows[-1]), self.heartbeat(p)[1] / 1000.0, out["p99_us"],
                              out["max_us"], out["rps"], len(inside), ms(stalls[-1]),
                              len(rest), ms(pct(rest, 0.99)), ms(max(rest)), loadavg()))
            print("rebuild of %d exceptions: commit -> new policy served median %s ms (max %s); "
                  "a connection's longest wait in that window median %s ms (max %s), outside "
                  "it p99 %s ms; policyd_load (50 connections) with a change: median p99_us=%d "
                  "max_us=%d, without: median p99_us=%d max_us=%d" % (
                      n, ms(statistics.median(windows)), ms(max(windows)),
                      ms(statistics.median(stalls)), ms(max(stalls)), ms(pct(outside, 0.99)),
                      statistics.median(int(o["p99_us"]) for o in loaded),
                      statistics.median(int(o["max_us"]) for o in loaded),
                      statistics.median(int(o["p99_us"]) for o in quiet),
                      statistics.median(int(o["max_us"]) for o in quiet)))
        finally:
            probe.stop()
            admin.close()
            self.stop(p)
            self.log_problems([p])
            self.log_refreshes(p)

    def log_refreshes(self, proc):
        """The daemon's own figures of each refresh: in all, the cache file
        (the pull from PostgreSQL, its fsync and rename), the snapshot."""
        path = os.path.join(proc.dir, "saslgate-policyd.log")
        with open(path, errors="replace") as f:
            for line in f:
                m = re.search(r"generation (\d+) in service.*?(\d+) ms in all, (?:cache written "
                              r"in (\d+) ms, )?snapshot built in (\d+) ms", line)
                if m:
                    print("policyd refresh to generation %s: %s ms in all, cache written %s ms, "
                          "snapshot built %s ms" % tuple(v or "?" for v in m.groups()))

    def close(self):
        for p in list(self.procs):
            self.stop(p)
        if self.pg is not None:
            self.pg.remove()


class Loader(threading.Thread):
    """bench/policyd_load in the background."""

    def __init__(self, bench, sock, connections, seconds, warmup):
        super().__init__(daemon=True)
        self.args = (sock, connections, seconds, warmup)
        self.bench = bench
        self.result = None
        self.error = None

    def run(self):
        try:
            self.result = self.bench.load(*self.args)
        except Exception as e:  # raised again by join()
            self.error = e

    def join(self, timeout=None):
        super().join(timeout)
        if self.error is not None:
            raise RuntimeError("bench/policyd_load: %s" % self.error)


class Psql:
    """One psql session; change() commits a policy write the way
    saslgatectl's push does (the write, the generation bumped, NOTIFY) and
    returns once PostgreSQL has answered the COMMIT."""

    def __init__(self, pg, user):
        self.proc = subprocess.Popen(
            [os.path.join(PG_BIN, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-h", "127.0.0.1", "-p", str(pg.port), "-U", user, "-d", "saslgate"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.n = 0

    def change(self, sql):
        self.n += 1
        self.proc.stdin.write(
            "BEGIN;\n%s;\nUPDATE settings SET value = (value::bigint + 1)::text WHERE key = "
            "'generation';\nSELECT pg_notify('%s', value) FROM settings WHERE key = "
            "'generation';\nCOMMIT;\n\\echo done-%d\n" % (sql, CHANNEL, self.n))
        self.proc.stdin.flush()
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("psql exited")
            if line.strip() == "done-%d" % self.n:
                return

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(10)


def policy_request(n):
    return ("request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
            "helo_name=probe.example.net\nqueue_id=\nsender=%s\nrecipient=r@example.org\n"
            "recipient_count=0\nclient_address=%s\nclient_name=unknown\n"
            "reverse_client_name=unknown\ninstance=%x.probe.%d\nsasl_method=PLAIN\n"
            "sasl_username=%s\nsasl_sender=\nsize=0\nencryption_protocol=TLSv1.3\n"
            "encryption_cipher=TLS_AES_256_GCM_SHA384\nencryption_keysize=256\n"
            "policy_context=submission\nserver_address=192.0.2.1\nserver_port=587\n\n"
            % (PROBE_USER, PROBE_IP, os.getpid(), n, PROBE_USER)).encode()


class Prober(threading.Thread):
    """Asks one daemon about PROBE_USER (PLAIN, from PROBE_IP) in a tight
    loop. expect(state) then wait_seen(): when the first answer in that state
    arrived. record=True keeps (sent, answered, state) of every request."""

    def __init__(self, daemon, milter, record=False):
        super().__init__(daemon=True)
        self.daemon, self.milter, self.record = daemon, milter, record
        self.cond = threading.Condition()
        self.state = None
        self.want = None
        self.seen = None
        self.samples = []
        self.count = 0
        self.running = True
        self.error = None

    def ask_milter(self):
        cmd, _ = session("unix:" + self.daemon.sock,
                         {"i": "P%d" % self.count, "{auth_type}": "PLAIN",
                          "{auth_authen}": PROBE_USER}, addr=PROBE_IP)
        return "block" if cmd == SMFIR_REPLYCODE else "allow"

    def run(self):
        try:
            sock = None
            if not self.milter:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(60)
                sock.connect(self.daemon.sock)
            pending = b""
            while self.running:
                sent = time.monotonic()
                if self.milter:
                    state = self.ask_milter()
                else:
                    sock.sendall(policy_request(self.count))
                    while b"\n\n" not in pending:
                        chunk = sock.recv(4096)
                        if not chunk:
                            raise RuntimeError("policyd closed the probe connection")
                        pending += chunk
                    end = pending.index(b"\n\n") + 2
                    reply, pending = pending[:end], pending[end:]
                    state = "block" if reply.startswith(b"action=5") else "allow"
                answered = time.monotonic()
                self.count += 1
                with self.cond:
                    self.state = state
                    if self.record:
                        self.samples.append((sent, answered, state))
                    if self.want == state and self.seen is None:
                        self.seen = answered
                    self.cond.notify_all()
        except Exception as e:  # reported by wait_*()
            with self.cond:
                self.error = e
                self.cond.notify_all()

    def expect(self, state):
        with self.cond:
            self.want, self.seen = state, None

    def wait_seen(self, deadline):
        with self.cond:
            while self.seen is None and self.error is None and time.monotonic() < deadline:
                self.cond.wait(0.05)
            if self.error:
                raise RuntimeError("probe of %s: %s" % (self.daemon.name, self.error))
            return self.seen

    def wait_state(self, state, timeout):
        self.expect(state)
        return self.wait_seen(time.monotonic() + timeout) is not None

    def stop(self):
        self.running = False
        self.join(30)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    build, work = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    secs = float(sys.argv[4]) if len(sys.argv) > 4 else 5
    why = missing()
    if why is not None:
        print("== pg: skipped: cannot run a private PostgreSQL here: %s" % why)
        sys.exit(77)
    parts = os.environ.get("PG_PARTS", "throughput,pickup,rebuild").split(",")
    os.makedirs(work, exist_ok=True)
    bench = Bench(build, work, rounds, secs)
    started = time.monotonic()
    try:
        print("== pg: private PostgreSQL (%s), %s" % (PG_BIN, loadavg()))
        bench.pg = PostgresServer()
        bench.pg.start()
        bench.pg.setup_database()
        bench.make_stores()
        for part in ("throughput", "pickup", "rebuild"):
            if part in parts:
                getattr(bench, part)()
    finally:
        bench.close()
    print("== pg: done in %.0f s (%s)" % (time.monotonic() - started, loadavg()))


if __name__ == "__main__":
    main()
