"""Helpers for the saslgatectl tests: run the real binary against a store in a
temporary directory, parse its --json output, and fingerprint the store so a
test can assert that invalid input left it byte-for-byte unchanged."""

import hashlib
import json
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILDDIR = os.environ.get("SASLGATE_BUILDDIR", ROOT)
CTL = os.path.join(BUILDDIR, "saslgatectl")

WEBMAIL_COMMAND = ('saslgatectl exception add --location loopback --permanent '
                   '--reason "local webmail"')


def run(store_dir, *args, stdin=None, env=None):
    """saslgatectl -d store_dir ARGS -> CompletedProcess (never raises on exit status)."""
    return subprocess.run([CTL, "-d", str(store_dir)] + [str(a) for a in args],
                          input=stdin, capture_output=True, text=True, timeout=30, env=env)


def ok(store_dir, *args):
    """Runs and asserts exit status 0; returns stdout."""
    proc = run(store_dir, *args)
    assert proc.returncode == 0, "saslgatectl %s -> %d\n%s%s" % (
        " ".join(map(str, args)), proc.returncode, proc.stdout, proc.stderr)
    return proc.stdout


def add_exception(store_dir, user=None, location=None, policy=None, reason="integration test"):
    """A permanent exception, added as an administrator adds it."""
    args = ["exception", "add", "--permanent", "--reason", reason]
    if user:
        args += ["--user", user]
    if location:
        args += ["--location", location]
    if policy:
        args += ["--policy", policy]
    ok(store_dir, *args)


def js(store_dir, *args):
    """Runs with --json, asserts exit status 0 and returns the parsed output."""
    return json.loads(ok(store_dir, "--json", *args))


def fingerprint(store_dir):
    """sha256 of policy.db (after saslgatectl closed it: the WAL is checkpointed
    and removed) plus the export without its timestamp."""
    path = os.path.join(str(store_dir), "policy.db")
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    wal = path + "-wal"
    wal_size = os.path.getsize(wal) if os.path.exists(wal) else 0
    export = json.loads(ok(store_dir, "export"))
    export.pop("exported_at", None)
    # export itself must not change the file
    with open(path, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == digest
    return digest, wal_size, export
