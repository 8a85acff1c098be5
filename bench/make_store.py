#!/usr/bin/env python3
"""Builds the benchmark store used by bench/run.sh for the daemons:
`saslgatectl init` plus 9 more policies (10 in all), a group, a location,
and N exceptions (default 100,000): exact users (most of whom never submit in
the benchmark), domains, a few globs, user + location, and 1% of the load
generators' users.

usage: bench/make_store.py DIR [EXCEPTIONS]   (SASLGATE_BUILDDIR: the build dir)
"""
import os
import sqlite3
import subprocess
import sys
import time

build = os.environ.get("SASLGATE_BUILDDIR",
                       os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
d = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 100000
subprocess.run([os.path.join(build, "saslgatectl"), "-d", d, "init"], check=True,
               capture_output=True)
db = sqlite3.connect(os.path.join(d, "policy.db"))
now = int(time.time())
with db:
    db.execute("INSERT INTO groups (name, created_at) VALUES ('staff', ?)", (now,))
    db.executemany("INSERT INTO group_members VALUES ('staff', ?)",
                   [("@staff.example.test",), ("admin-*@example.test",)])
    db.execute("INSERT INTO locations (name, created_at) VALUES ('office', ?)", (now,))
    db.executemany("INSERT INTO location_nets VALUES ('office', ?)",
                   [("203.0.113.0/24",), ("2001:db8:1::/48",)])
    policies = [
        ("p1-report-password", "report-only", "password", "all", "", "", "", "any", "", "any", "any"),
        ("p2-staff-legacy", "enforce", "legacy", "", "staff", "", "", "any", "", "any", "any"),
        ("p3-office-only", "enforce", "legacy", "all", "", "", "", "office", "", "any", "any"),
        ("p4-plaintext", "report-only", "legacy,password", "all", "", "", "", "any", "office", "plaintext", "any"),
        ("p5-submission", "enforce", "CRAM-MD5,DIGEST-MD5", "all", "", "", "", "any", "", "any", "submission"),
        ("p6-off", "off", "legacy", "all", "", "", "", "any", "", "any", "any"),
        ("p7-excl", "report-only", "legacy", "all", "", "svc-*@example.test", "staff", "any", "loopback", "any", "any"),
        ("p8-ntlm", "enforce", "NTLM", "all", "", "", "", "any", "", "encrypted", "any"),
        ("p9-domain", "report-only", "legacy", "@example.test", "", "", "", "any", "", "any", "submission,submissions"),
    ]
    for p in policies:
        db.execute("INSERT INTO policies (name, state, mechs, include_users, include_groups, "
                   "exclude_users, exclude_groups, include_locations, exclude_locations, tls, "
                   "services, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                   p + (now, now))
    rows = []
    for i in range(n):
        k = i % 10
        if k < 7:
            rows.append((None, "exc%d@example.test" % i, None, None, None))
        elif k == 7:
            rows.append(("block-legacy", "@d%d.example.test" % i, None, None, None))
        elif k == 8:  # globs are expected to be few: a handful only
            rows.append((None, ("scanner%d-*@example.test" % i) if i < 1000
                         else "exd%d@example.test" % i, None, None, "PLAIN"))
        else:
            rows.append((None, "exl%d@example.test" % i, None, "office", None))
    for u in range(0, min(n, 10000), 100):
        rows[u] = (None, "user%d@example.test" % u, None, None, None)
    db.executemany("INSERT INTO exceptions (policy, user_pattern, group_name, location, mechs, "
                   "reason, created_by, created_at, expires_at) "
                   "VALUES (?,?,?,?,?,'bench','bench',?,NULL)", [r + (now,) for r in rows])
    db.execute("UPDATE settings SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
db.close()
