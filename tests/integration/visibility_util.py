"""Helpers for the visibility tests (saslgatectl report/log/stats/status/prune):
a store with a running saslgate-policyd that has recorded a known mix of
submissions, saslgatectl runners, and a strict parser of the Prometheus text
exposition format (version 0.0.4)."""

import json
import math
import os
import re
import signal
import sqlite3
import subprocess

from policyd_util import CTL, Policyd, wait_for  # noqa: F401 (re-exported)

FAST = {"heartbeat_interval": "1s", "activity_flush_ms": "50"}


def run(store_dir, *args):
    """saslgatectl -d store_dir ARGS -> CompletedProcess (never raises)."""
    return subprocess.run([CTL, "-d", str(store_dir)] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=60)


def ok(store_dir, *args):
    proc = run(store_dir, *args)
    assert proc.returncode == 0, "saslgatectl %s -> %d\n%s%s" % (
        " ".join(map(str, args)), proc.returncode, proc.stdout, proc.stderr)
    return proc.stdout


def js(store_dir, *args):
    return json.loads(ok(store_dir, "--json", *args))


def activity(store_dir, sql, params=()):
    db = sqlite3.connect(os.path.join(str(store_dir), "activity.db"), timeout=10)
    try:
        with db:
            return db.execute(sql, params).fetchall()
    finally:
        db.close()


def ask(daemon, user, mech, ip, **extra):
    """One submission through the policy daemon; returns the reply bytes."""
    with daemon.client() as c:
        return c.ask(sasl_method=mech, sasl_username=user, client_address=ip, **extra)


def wait_logged(store_dir, n, timeout=10.0):
    """Waits until activity.db holds n decisions; returns the count."""
    def count():
        try:
            got = activity(store_dir, "SELECT count(*) FROM decisions")[0][0]
        except sqlite3.Error:
            return None
        return got if got >= n else None
    got = wait_for(count, timeout)
    assert got == n, "expected %d logged decisions, have %r" % (n, got)
    return got


def wait_heartbeat(store_dir, pid, predicate=lambda row: True, timeout=10.0):
    """Waits for the heartbeat of pid (as status --json shows it) to satisfy
    predicate; returns that daemon entry."""
    def find():
        proc = run(store_dir, "--json", "status", "--integrity", "none")
        if proc.returncode != 0:
            return None
        for d in json.loads(proc.stdout)["daemons"]:
            if d["pid"] == pid and predicate(d):
                return d
        return None
    d = wait_for(find, timeout, 0.1)
    assert d, "no heartbeat of pid %d satisfying the condition" % pid
    return d


def nagios(store_dir, *args):
    proc = run(store_dir, "status", "--nagios", *args)
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout + proc.stderr
    m = re.fullmatch(r"SASLGATE (OK|WARNING|CRITICAL|UNKNOWN) - (.+) \| (.+)", lines[0])
    assert m, lines[0]
    assert proc.returncode == {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}[m.group(1)]
    perf = {}
    for item in m.group(3).split():
        label, _, rest = item.partition("=")
        value = re.match(r"(-?[0-9.]+)(s|c|%|B)?(;[^;]*){0,4}$", rest)
        assert value, "bad perfdata %r" % item
        perf[label] = float(value.group(1))
    return m.group(1), m.group(2), perf


def stop_hard(daemon):
    daemon.proc.send_signal(signal.SIGKILL)
    daemon.proc.wait()
    if not daemon.log.closed:
        daemon.log.close()


# ---------------------------------------------------------------- Prometheus

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def _parse_labels(text, lineno):
    """Parses 'a="x",b="y\\"z"' strictly; returns a dict."""
    labels = {}
    i = 0
    while i < len(text):
        m = LABEL_NAME.match(text, i)
        assert m, "line %d: bad label name at %r" % (lineno, text[i:])
        name = m.group(0)
        i = m.end()
        assert text[i:i + 2] == '="', "line %d: expected =\" after %s" % (lineno, name)
        i += 2
        value = []
        while True:
            assert i < len(text), "line %d: unterminated label value" % lineno
            ch = text[i]
            if ch == "\\":
                esc = text[i + 1:i + 2]
                assert esc in ("\\", '"', "n"), "line %d: bad escape \\%s" % (lineno, esc)
                value.append("\n" if esc == "n" else esc)
                i += 2
            elif ch == '"':
                i += 1
                break
            else:
                assert ch != "\n"
                value.append(ch)
                i += 1
        assert name not in labels, "line %d: label %s twice" % (lineno, name)
        labels[name] = "".join(value)
        if i < len(text):
            assert text[i] == ",", "line %d: expected , at %r" % (lineno, text[i:])
            i += 1
            assert i < len(text), "line %d: trailing comma" % lineno
    return labels


def parse_prometheus(text):
    """Strict parser of the text exposition format: returns
    {family: {"type": t, "help": h, "samples": {frozenset(labels): value}}}.
    Fails on: bad names, bad label syntax or escapes, a sample without a
    preceding TYPE, TYPE after samples or twice, interleaved families,
    duplicate series, values that are not floats, negative counters."""
    assert text.endswith("\n"), "exposition must end with a newline"
    families = {}
    closed = set()
    current = None
    for lineno, line in enumerate(text.split("\n")[:-1], 1):
        assert line.strip() == line or line == "", "line %d: stray blanks" % lineno
        if line == "":
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                assert METRIC_NAME.fullmatch(name), "line %d: bad name %r" % (lineno, name)
                fam = families.setdefault(name, {"type": None, "help": None, "samples": {}})
                assert name not in closed, "line %d: family %s interleaved" % (lineno, name)
                if current is not None and current != name:
                    closed.add(current)
                current = name
                if parts[1] == "TYPE":
                    assert len(parts) == 4 and parts[3] in TYPES, "line %d: bad TYPE" % lineno
                    assert fam["type"] is None, "line %d: second TYPE for %s" % (lineno, name)
                    assert not fam["samples"], "line %d: TYPE after samples" % lineno
                    fam["type"] = parts[3]
                else:
                    assert fam["help"] is None, "line %d: second HELP for %s" % (lineno, name)
                    fam["help"] = parts[3] if len(parts) == 4 else ""
            continue
        m = METRIC_NAME.match(line)
        assert m, "line %d: bad metric name in %r" % (lineno, line)
        name = m.group(0)
        rest = line[m.end():]
        labels = {}
        if rest.startswith("{"):
            end = rest.rfind("}")
            assert end > 0, "line %d: unterminated labels" % lineno
            labels = _parse_labels(rest[1:end], lineno)
            rest = rest[end + 1:]
        assert rest.startswith(" "), "line %d: no blank before the value" % lineno
        fields = rest[1:].split(" ")
        assert 1 <= len(fields) <= 2, "line %d: junk after value" % lineno
        value = float(fields[0])  # raises on garbage
        if len(fields) == 2:
            int(fields[1])
        family = name
        for suffix in ("_bucket", "_sum", "_count"):
            if name not in families and name.endswith(suffix):
                family = name[: -len(suffix)]
        assert family in families and families[family]["type"], \
            "line %d: sample %s without a preceding TYPE" % (lineno, name)
        assert family == current, "line %d: %s outside its family block" % (lineno, name)
        fam = families[family]
        key = frozenset(labels.items())
        assert key not in fam["samples"], "line %d: duplicate series %s%r" % (lineno, name,
                                                                              labels)
        if fam["type"] == "counter":
            assert value >= 0 and not math.isnan(value), "line %d: negative counter" % lineno
        fam["samples"][key] = value
    for name, fam in families.items():
        assert fam["type"], "family %s has no TYPE" % name
    return families


def sample(families, name, **labels):
    """The value of one series; labels must match exactly."""
    key = frozenset(labels.items())
    assert name in families, "no family %s" % name
    samples = families[name]["samples"]
    assert key in samples, "no series %s%r; have %r" % (name, labels, list(samples))
    return samples[key]

