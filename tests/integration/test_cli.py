"""saslgatectl: every command against a real store in a temporary directory,
exit statuses, --json output, and invalid input leaving the store unchanged."""

import json
import os
import re
import shutil
import sqlite3

import pytest

from ctl_util import CTL, WEBMAIL_COMMAND, fingerprint, js, ok, run

pytestmark = pytest.mark.skipif(not os.access(CTL, os.X_OK), reason="saslgatectl not built")


@pytest.fixture
def store(tmp_path):
    d = tmp_path / "store"
    ok(d, "init")
    return d


# ---- global behaviour ----

def test_version_and_help(tmp_path):
    proc = run(tmp_path, "--version")
    assert proc.returncode == 0 and proc.stdout.startswith("saslgatectl ")
    proc = run(tmp_path, "--help")
    assert proc.returncode == 0
    for noun in ("init", "policy", "exception", "group", "location", "mech", "explain",
                 "export", "import", "audit", "check"):
        assert noun in proc.stdout


@pytest.mark.parametrize("args", [
    ["init", "-h"], ["policy", "-h"], ["policy", "list", "-h"], ["policy", "show", "--help"],
    ["policy", "add", "-h"], ["policy", "set", "-h"], ["policy", "remove", "-h"],
    ["exception", "add", "-h"], ["exception", "list", "-h"], ["exception", "remove", "-h"],
    ["exception", "extend", "-h"], ["group", "add", "-h"], ["group", "remove", "-h"],
    ["group", "add-member", "-h"], ["group", "remove-member", "-h"], ["group", "list", "-h"],
    ["location", "add", "-h"], ["location", "remove", "-h"], ["location", "add-net", "-h"],
    ["location", "remove-net", "-h"], ["location", "list", "-h"], ["mech", "list", "-h"],
    ["mech", "set", "-h"], ["explain", "-h"], ["export", "-h"], ["import", "-h"],
    ["audit", "-h"], ["check", "-h"], ["settings", "list", "-h"], ["settings", "set", "-h"],
])
def test_every_command_has_help(tmp_path, args):
    proc = run(tmp_path / "nostore", *args)
    assert proc.returncode == 0, proc.stderr
    assert "usage:" in proc.stdout
    assert not (tmp_path / "nostore").exists()  # help never creates a store


@pytest.mark.parametrize("args", [
    [], ["frobnicate"], ["policy"], ["policy", "frobnicate"], ["policy", "list", "--bogus"],
    ["policy", "show"], ["exception", "add", "--user"], ["explain", "--user", "a"],
    ["group", "add"], ["location", "add", "office"], ["mech", "set", "PLAIN"],
    ["--bogus", "check"],
])
def test_bad_usage_is_status_2(tmp_path, args):
    proc = run(tmp_path, *args)
    assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
    assert proc.stderr


def test_missing_store_is_runtime_failure(tmp_path):
    proc = run(tmp_path / "absent", "policy", "list")
    assert proc.returncode == 1
    assert "init" in proc.stderr


def test_store_dir_from_environment(tmp_path):
    env = dict(os.environ, SASLGATE_DIR=str(tmp_path / "envstore"))
    import subprocess
    proc = subprocess.run([CTL, "init"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "envstore" / "policy.db").exists()


# ---- init ----

def test_init_creates_secure_default(tmp_path):
    d = tmp_path / "s"
    proc = run(d, "init")
    assert proc.returncode == 0, proc.stderr
    assert "ENFORCED" in proc.stdout
    assert "loopback" in proc.stdout and "refused" in proc.stdout
    assert WEBMAIL_COMMAND in proc.stdout
    policies = js(d, "policy", "list")
    assert [p["name"] for p in policies] == ["block-legacy"]
    p = policies[0]
    assert p["state"] == "enforce" and p["mechs"] == "legacy"
    assert p["include_users"] == "all" and p["include_locations"] == "any"
    assert p["exclude_users"] == "" and p["exclude_groups"] == ""
    assert p["exclude_locations"] == ""
    assert p["reply"].startswith("550 5.7.9 ")
    locs = js(d, "location", "list")
    assert locs == [{"name": "loopback", "nets": ["127.0.0.0/8", "::1/128"],
                     "created_at": locs[0]["created_at"]}]
    mechs = {m["name"]: m["class"] for m in js(d, "mech", "list") if m["in_catalogue"]}
    assert mechs["PLAIN"] == "legacy" and mechs["LOGIN"] == "legacy"
    assert mechs["XOAUTH2"] == "modern" and mechs["OAUTHBEARER"] == "modern"
    assert mechs["SCRAM-SHA-256"] == "password"
    audit = js(d, "audit")
    assert audit[0]["action"] == "init"


def test_init_report_only(tmp_path):
    d = tmp_path / "s"
    out = ok(d, "init", "--report-only")
    assert "REPORT-ONLY" in out and WEBMAIL_COMMAND in out
    assert js(d, "policy", "show", "block-legacy")["state"] == "report-only"
    proc = run(d, "explain", "--user", "a@example.com", "--ip", "192.0.2.1", "--mech", "PLAIN")
    assert proc.returncode == 0
    assert "would-block" in proc.stdout


def test_init_refuses_existing_store(store):
    before = fingerprint(store)
    proc = run(store, "init")
    assert proc.returncode in (1, 2)
    assert "already exists" in proc.stderr
    assert fingerprint(store) == before


def test_init_json(tmp_path):
    out = js(tmp_path / "s", "init")
    assert out["policy"] == "block-legacy" and out["state"] == "enforce"
    assert out["exempt_local_webmail"] == WEBMAIL_COMMAND


# ---- policies ----

def test_policy_add_show_set_remove(store):
    ok(store, "group", "add", "staff", "alice@example.com", "@example.org")
    ok(store, "location", "add", "office", "10.0.0.0/8", "2001:db8::/32")
    ok(store, "policy", "add", "strict", "--state", "report-only", "--mech",
       "legacy,password,xfoo", "--include-groups", "staff", "--exclude-users",
       "boss@example.com", "--include-locations", "any", "--exclude-locations", "office",
       "--tls", "plaintext", "--services", "submission,smtps", "--reply",
       "554 5.7.9 Legacy %m refused", "--enforce-from", "2099-01-01T00:00Z")
    p = js(store, "policy", "show", "strict")
    assert p["state"] == "report-only"
    assert p["mechs"] == "legacy,password,XFOO"
    assert p["include_users"] == "" and p["include_groups"] == "staff"
    assert p["exclude_users"] == "boss@example.com"
    assert p["exclude_locations"] == "office"
    assert p["tls"] == "plaintext" and p["services"] == "submission,smtps"
    assert p["reply"] == "554 5.7.9 Legacy %m refused"
    assert p["enforce_from"] == "2099-01-01T00:00:00Z"
    text = ok(store, "policy", "show", "strict")
    assert "strict" in text and "office" in text
    ok(store, "policy", "set", "strict", "--exclude-users", "none", "--exclude-locations",
       "none", "--enforce-from", "none", "--state", "enforce", "--services", "any")
    p = js(store, "policy", "show", "strict")
    assert p["exclude_users"] == "" and p["exclude_locations"] == ""
    assert p["enforce_from"] is None and p["state"] == "enforce" and p["services"] == "any"
    assert p["include_groups"] == "staff"  # untouched options stay
    names = [x["name"] for x in js(store, "policy", "list")]
    assert names == ["block-legacy", "strict"]
    listing = ok(store, "policy", "list")
    assert "strict" in listing and "block-legacy" in listing
    ok(store, "exception", "add", "--user", "x@example.com", "--policy", "strict",
       "--permanent", "--reason", "scoped")
    out = ok(store, "policy", "remove", "strict")
    assert "1 exception" in out
    assert [x["name"] for x in js(store, "policy", "list")] == ["block-legacy"]
    assert js(store, "exception", "list") == []
    proc = run(store, "policy", "show", "strict")
    assert proc.returncode == 2 and "unknown policy" in proc.stderr
    actions = [a["action"] for a in js(store, "audit")]
    assert actions[-1] == "policy remove" and "policy set" in actions and "policy add" in actions
    removed = js(store, "audit")[-1]
    assert removed["before"]["name"] == "strict" and removed["after"] is None


# Invalid input: status 2, a message naming the field, and the store unchanged.
INVALID = [
    (["location", "add", "lan", "10.0.0.300/8"], "10.0.0.300"),
    (["location", "add-net", "loopback", "10.0.0.300/8"], "10.0.0.300"),
    (["location", "add-net", "loopback", "10.1.0.0/8"], "cidr"),
    (["location", "remove-net", "loopback", "10.9.9.0/24"], "not in location"),
    (["location", "add", "bad name", "10.0.0.0/8"], "location name"),
    (["location", "add", "loopback", "10.0.0.0/8"], "already exists"),
    (["location", "remove", "nowhere"], "unknown location"),
    (["exception", "add", "--user", "bob", "--expires", "2027-02-30", "--reason", "x"],
     "--expires"),
    (["exception", "add", "--user", "bob", "--expires", "2001-01-01", "--reason", "x"],
     "past"),
    (["exception", "add", "--user", "bob", "--expires", "soonish", "--reason", "x"],
     "--expires"),
    (["exception", "add", "--user", "bob", "--permanent"], "--reason"),
    (["exception", "add", "--user", "bob", "--permanent", "--reason", ""], "--reason"),
    (["exception", "add", "--user", "bob", "--reason", "x"], "--expires"),
    (["exception", "add", "--user", "bob", "--reason", "x", "--expires", "30d",
      "--permanent"], "--expires"),
    (["exception", "add", "--reason", "x", "--permanent"], "--user"),
    (["exception", "add", "--user", "a", "--group", "staff", "--reason", "x", "--permanent"],
     "--user"),
    (["exception", "add", "--location", "nowhere", "--reason", "x", "--permanent"],
     "unknown location"),
    (["exception", "add", "--group", "nogroup", "--reason", "x", "--permanent"],
     "unknown group"),
    (["exception", "add", "--user", "bob", "--policy", "nosuch", "--reason", "x",
      "--permanent"], "unknown policy"),
    (["exception", "add", "--user", "a@@b", "--reason", "x", "--permanent"], "--user"),
    (["exception", "add", "--user", "bob", "--mech", "PL AIN", "--reason", "x",
      "--permanent"], "--mech"),
    (["exception", "remove", "999"], "no exception"),
    (["exception", "remove", "abc"], "exception id"),
    (["exception", "extend", "999", "--expires", "30d"], "no exception"),
    (["exception", "extend", "1", "--expires", "2027-02-30"], "--expires"),
    (["policy", "set", "nosuch", "--state", "off"], "unknown policy"),
    (["policy", "remove", "nosuch"], "unknown policy"),
    (["policy", "add", "block-legacy"], "already exists"),
    (["policy", "add", "p2", "--reply", "550 4.7.1 Go away"], "--reply"),
    (["policy", "set", "block-legacy", "--reply", "550 4.7.1 Go away"], "agree in class"),
    (["policy", "set", "block-legacy", "--reply", "250 2.0.0 fine"], "--reply"),
    (["policy", "set", "block-legacy", "--reply", "550"], "--reply"),
    (["policy", "set", "block-legacy", "--state", "maybe"], "--state"),
    (["policy", "set", "block-legacy", "--tls", "sometimes"], "--tls"),
    (["policy", "set", "block-legacy", "--enforce-from", "2027-02-30"], "--enforce-from"),
    (["policy", "set", "block-legacy", "--mech", "legacy,no such"], "--mech"),
    (["policy", "set", "block-legacy", "--mech", ""], "--mech"),
    (["policy", "set", "block-legacy", "--include-groups", "nogroup"], "unknown group"),
    (["policy", "set", "block-legacy", "--exclude-groups", "nogroup"], "--exclude-groups"),
    (["policy", "set", "block-legacy", "--include-locations", "nowhere"], "unknown location"),
    (["policy", "set", "block-legacy", "--include-locations", "none"], "--include-locations"),
    (["policy", "set", "block-legacy", "--exclude-locations", "loopback,nowhere"],
     "unknown location"),
    (["policy", "set", "block-legacy", "--include-users", "none"], "no user"),
    (["policy", "set", "block-legacy", "--exclude-users", "@"], "--exclude-users"),
    (["policy", "set", "block-legacy", "--services", "sub mission"], "--services"),
    (["policy", "add", "all", "--state", "off"], "reserved"),
    (["group", "add", "bad/name"], "group name"),
    (["group", "add", "staff2", "a@@b"], "pattern"),
    (["group", "add-member", "nogroup", "alice"], "unknown group"),
    (["group", "remove-member", "staff", "nobody"], "not in group"),
    (["group", "remove", "nogroup"], "unknown group"),
    (["group", "remove", "staff"], "still used"),
    (["location", "remove", "loopback"], "still used"),
    (["mech", "set", "PLAIN", "supersafe"], "class"),
    (["mech", "set", "NOT A MECH", "modern"], "mechanism"),
    (["settings", "set", "unknown_mechanism_class", "safe"], "unknown_mechanism_class"),
    (["settings", "set", "activity_retention_days", "-1"], "activity_retention_days"),
    (["settings", "set", "generation", "7"], "unknown setting"),
    (["explain", "--user", "a", "--ip", "10.0.0.300", "--mech", "PLAIN"], "--ip"),
    (["explain", "--user", "a", "--ip", "10.0.0.1", "--mech", "PL AIN"], "--mech"),
    (["explain", "--user", "a", "--ip", "10.0.0.1", "--mech", "PLAIN", "--at", "2027-02-30"],
     "--at"),
    (["audit", "--since", "last tuesday"], "--since"),
]


@pytest.fixture(scope="module")
def busy_template(tmp_path_factory):
    """A store with a group, a location and an exception that use each other."""
    d = tmp_path_factory.mktemp("busy") / "store"
    ok(d, "init")
    ok(d, "group", "add", "staff", "alice@example.com")
    ok(d, "policy", "add", "staff-only", "--include-groups", "staff", "--state",
       "report-only")
    ok(d, "exception", "add", "--location", "loopback", "--permanent", "--reason", "web")
    return d


@pytest.fixture
def busy_store(busy_template, tmp_path):
    d = tmp_path / "store"
    shutil.copytree(busy_template, d)
    return d


@pytest.mark.parametrize("args,needle", INVALID, ids=[" ".join(a[:3]) for a, _ in INVALID])
def test_invalid_input_leaves_store_unchanged(busy_store, args, needle):
    before = fingerprint(busy_store)
    proc = run(busy_store, *args)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert needle in proc.stderr, proc.stderr
    assert proc.stderr.startswith("saslgatectl: ")
    assert fingerprint(busy_store) == before


def test_runtime_failure_is_status_1(store):
    os.chmod(store / "policy.db", 0o400)
    try:
        if os.geteuid() == 0:
            pytest.skip("root ignores file modes")
        proc = run(store, "group", "add", "x")
        assert proc.returncode == 1
    finally:
        os.chmod(store / "policy.db", 0o600)


# ---- groups and locations ----

def test_groups(store):
    ok(store, "group", "add", "staff")
    ok(store, "group", "add-member", "staff", "Alice@Example.COM", "@example.org",
       "scanner-*@example.com")
    groups = js(store, "group", "list")
    assert groups[0]["name"] == "staff"
    assert groups[0]["members"] == ["@example.org", "alice@example.com",
                                    "scanner-*@example.com"]
    ok(store, "group", "remove-member", "staff", "@example.org")
    assert js(store, "group", "list")[0]["members"] == ["alice@example.com",
                                                       "scanner-*@example.com"]
    assert "staff" in ok(store, "group", "list")
    ok(store, "group", "remove", "staff")
    assert js(store, "group", "list") == []


def test_locations(store):
    ok(store, "location", "add", "office", "192.0.2.0/24", "2001:DB8::/32", "198.51.100.7")
    ok(store, "location", "add-net", "office", "203.0.113.0/25")
    ok(store, "location", "remove-net", "office", "198.51.100.7/32")
    office = [l for l in js(store, "location", "list") if l["name"] == "office"][0]
    assert sorted(office["nets"]) == sorted(["192.0.2.0/24", "2001:db8::/32",
                                             "203.0.113.0/25"])
    ok(store, "location", "remove", "office")
    assert [l["name"] for l in js(store, "location", "list")] == ["loopback"]


# ---- exceptions ----

def test_exception_lifecycle(store):
    out = ok(store, "exception", "add", "--user", "alice@example.com", "--location",
             "loopback", "--mech", "plain,login", "--expires", "30d", "--reason",
             'old "phone" \\ ünïcode')
    ex_id = int(out.strip())
    rows = js(store, "exception", "list")
    assert len(rows) == 1
    e = rows[0]
    assert e["id"] == ex_id and e["user"] == "alice@example.com"
    assert e["location"] == "loopback" and e["mechs"] == "PLAIN,LOGIN"
    assert e["reason"] == 'old "phone" \\ ünïcode'
    assert e["created_by"] and e["expires_at"].endswith("Z") and e["expired"] is False
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", e["created_at"])
    ok(store, "exception", "extend", str(ex_id), "--permanent")
    assert js(store, "exception", "list")[0]["expires_at"] is None
    ok(store, "exception", "extend", str(ex_id), "--expires", "2099-12-31")
    assert js(store, "exception", "list")[0]["expires_at"].startswith("2099-12-31")
    text = ok(store, "exception", "list")
    assert "alice@example.com" in text
    ok(store, "group", "add", "staff", "bob@example.com")
    gid = int(ok(store, "exception", "add", "--group", "staff", "--policy", "block-legacy",
                 "--permanent", "--reason", "group").strip())
    assert js(store, "exception", "list")[1]["group"] == "staff"
    added = js(store, "exception", "add", "--location", "loopback", "--permanent",
               "--reason", "json")
    assert added["id"] > gid and added["location"] == "loopback"
    ok(store, "exception", "remove", str(ex_id))
    assert [e["id"] for e in js(store, "exception", "list")] == [gid, added["id"]]
    audit = js(store, "audit")
    assert audit[-1]["action"] == "exception remove"
    assert any(a["action"] == "exception remove" and a["before"]["id"] == ex_id
               for a in audit)


def test_exception_list_all_shows_expired(store, tmp_path):
    doc = json.loads(ok(store, "export"))
    doc["exceptions"] = [
        {"id": 7, "user": "old@example.com", "reason": "expired one",
         "expires_at": "2001-01-01T00:00:00Z"},
        {"id": 8, "user": "new@example.com", "reason": "active one",
         "expires_at": "2099-01-01T00:00:00Z"},
    ]
    f = tmp_path / "p.json"
    f.write_text(json.dumps(doc))
    ok(store, "import", f)
    assert [e["id"] for e in js(store, "exception", "list")] == [8]
    rows = js(store, "exception", "list", "--all")
    assert [(e["id"], e["expired"]) for e in rows] == [(7, True), (8, False)]
    assert "expired" in ok(store, "exception", "list", "--all")


# ---- explain: the production engine ----

def explain(store, *args):
    proc = run(store, "--json", "explain", *args)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_explain_plain_blocked_xoauth2_allowed(store):
    rc, d = explain(store, "--user", "alice@example.com", "--ip", "192.0.2.1", "--mech",
                    "PLAIN")
    assert rc == 1 and d["outcome"] == "block" and d["policy"] == "block-legacy"
    assert d["reply"]["code"] == "550" and d["reply"]["enhanced"] == "5.7.9"
    assert "PLAIN" in d["reply"]["text"]
    assert d["policies"][0]["status"] == "applied" and d["policies"][0]["enforcing"]
    rc, d = explain(store, "--user", "alice@example.com", "--ip", "192.0.2.1", "--mech",
                    "plain")
    assert rc == 1 and d["outcome"] == "block"
    for mech in ("XOAUTH2", "OAUTHBEARER", "EXTERNAL"):
        rc, d = explain(store, "--user", "alice@example.com", "--ip", "2001:db8::1",
                        "--mech", mech, "--tls")
        assert rc == 0 and d["outcome"] == "allow", mech
        assert d["policies"][0]["status"] == "not-applied"
        assert d["policies"][0]["failed_condition"] == "mechanism"
        assert d["reply"] is None
    proc = run(store, "explain", "--user", "a", "--ip", "192.0.2.1", "--mech", "LOGIN")
    assert proc.returncode == 1
    assert "block" in proc.stdout and "block-legacy" in proc.stdout


def test_explain_loopback_exception(store):
    rc, d = explain(store, "--user", "webmail", "--ip", "127.0.0.1", "--mech", "PLAIN")
    assert rc == 1
    ex = int(ok(store, "exception", "add", "--location", "loopback", "--permanent",
                "--reason", "local webmail").strip())
    rc, d = explain(store, "--user", "webmail", "--ip", "127.0.0.1", "--mech", "PLAIN")
    assert rc == 0 and d["outcome"] == "allow"
    assert d["policies"][0]["status"] == "excepted"
    assert d["policies"][0]["exception"]["id"] == ex
    assert d["policies"][0]["exception"]["reason"] == "local webmail"
    rc, d = explain(store, "--user", "webmail", "--ip", "::1", "--mech", "PLAIN")
    assert rc == 0
    rc, d = explain(store, "--user", "webmail", "--ip", "192.0.2.1", "--mech", "PLAIN")
    assert rc == 1
    text = ok(store, "explain", "--user", "w", "--ip", "127.0.0.1", "--mech", "PLAIN")
    assert "excepted by exception #%d" % ex in text


def test_explain_names_expired_exception(store):
    ex = int(ok(store, "exception", "add", "--user", "alice@example.com", "--expires", "30d",
                "--reason", "old phone").strip())
    rc, d = explain(store, "--user", "alice@example.com", "--ip", "192.0.2.1", "--mech",
                    "PLAIN")
    assert rc == 0 and d["policies"][0]["exception"]["id"] == ex
    rc, d = explain(store, "--user", "alice@example.com", "--ip", "192.0.2.1", "--mech",
                    "PLAIN", "--at", "60d")
    assert rc == 1
    expired = d["policies"][0]["expired_exceptions"]
    assert [e["id"] for e in expired] == [ex] and expired[0]["expired"] is True
    proc = run(store, "explain", "--user", "alice@example.com", "--ip", "192.0.2.1",
               "--mech", "PLAIN", "--at", "60d")
    assert proc.returncode == 1
    assert "#%d" % ex in proc.stdout and "expired" in proc.stdout


def test_explain_reports_first_failed_condition(store):
    ok(store, "location", "add", "office", "10.0.0.0/8")
    ok(store, "policy", "set", "block-legacy", "--exclude-locations", "office")
    ok(store, "policy", "add", "tls-only", "--tls", "plaintext", "--state", "report-only")
    rc, d = explain(store, "--user", "a@example.com", "--ip", "10.1.2.3", "--mech", "PLAIN",
                    "--tls")
    assert rc == 0 and d["outcome"] == "allow"
    by_name = {p["name"]: p for p in d["policies"]}
    assert by_name["block-legacy"]["failed_condition"] == "location-excluded"
    assert "office" in by_name["block-legacy"]["detail"]
    assert by_name["tls-only"]["failed_condition"] == "tls"
    rc, d = explain(store, "--user", "a@example.com", "--ip", "10.1.2.3", "--mech", "PLAIN")
    assert rc == 0 and d["label"] == "would-block" and d["report_only"] == ["tls-only"]


def test_mech_set_and_unknown_class_change_decisions(store):
    rc, _ = explain(store, "--user", "a", "--ip", "192.0.2.1", "--mech", "XFOO")
    assert rc == 1  # unknown mechanisms are legacy by default: fail safe
    ok(store, "settings", "set", "unknown_mechanism_class", "modern")
    rc, d = explain(store, "--user", "a", "--ip", "192.0.2.1", "--mech", "XFOO")
    assert rc == 0 and d["mech_class"] == "modern"
    settings = {s["key"]: s["value"] for s in js(store, "settings", "list")}
    assert settings["unknown_mechanism_class"] == "modern"
    ok(store, "mech", "set", "xfoo", "legacy")
    rc, d = explain(store, "--user", "a", "--ip", "192.0.2.1", "--mech", "XFOO")
    assert rc == 1 and d["mech_class"] == "legacy"
    m = [x for x in js(store, "mech", "list") if x["name"] == "XFOO"]
    assert m and m[0]["class"] == "legacy" and m[0]["in_catalogue"]
    out = ok(store, "mech", "list")
    assert "XFOO" in out and "information only" in out


def test_mech_list_shows_installed_cyrus_mechanisms(store):
    rows = js(store, "mech", "list")
    for r in rows:
        assert set(r) == {"name", "class", "in_catalogue", "installed", "sasl_flags"}
        assert (r["sasl_flags"] is None) == (not r["installed"])
    # libsasl2-modules ships PLAIN on the build hosts; not required elsewhere
    plain = [r for r in rows if r["name"] == "PLAIN"][0]
    if plain["installed"]:
        assert "noanonymous" in plain["sasl_flags"]


# ---- export / import ----

def test_export_import_roundtrip(store, tmp_path):
    ok(store, "group", "add", "staff", "alice@example.com", "@example.org")
    ok(store, "location", "add", "office", "10.0.0.0/8", "2001:db8::/48")
    ok(store, "policy", "add", "office-scram", "--mech", "password", "--include-groups",
       "staff", "--include-locations", "office", "--state", "report-only")
    ok(store, "exception", "add", "--group", "staff", "--location", "office", "--expires",
       "2099-01-01", "--reason", "migration", "--mech", "PLAIN")
    ok(store, "mech", "set", "XFOO", "modern")
    exported = ok(store, "export")
    doc = json.loads(exported)
    assert doc["format"] == "saslgate-policy" and doc["version"] == 1
    assert {p["name"] for p in doc["policies"]} == {"block-legacy", "office-scram"}
    f = tmp_path / "policy.json"
    f.write_text(exported)
    # change things, then import: the file replaces everything
    ok(store, "policy", "add", "extra", "--state", "off")
    ok(store, "exception", "add", "--location", "loopback", "--permanent", "--reason", "x")
    ok(store, "import", f)
    again = json.loads(ok(store, "export"))
    doc.pop("exported_at")
    again.pop("exported_at")
    assert again == doc
    assert js(store, "audit")[-1]["action"] == "import"
    assert ok(store, "check")


def test_import_from_stdin_and_defaults(store):
    doc = {"policies": [{"name": "only", "mechs": "legacy", "state": "enforce"}]}
    proc = run(store, "import", "-", stdin=json.dumps(doc))
    assert proc.returncode == 0, proc.stderr
    assert [p["name"] for p in js(store, "policy", "list")] == ["only"]
    assert js(store, "location", "list") == []
    # absent "mechanisms": the default catalogue
    mechs = {m["name"] for m in js(store, "mech", "list") if m["in_catalogue"]}
    assert {"PLAIN", "XOAUTH2"} <= mechs


BAD_IMPORTS = [
    (lambda d: d["policies"].append({"name": "bad", "include_locations": "nowhere"}),
     "(bad).include_locations"),
    (lambda d: d["locations"][0]["nets"].append("10.0.0.300/8"), "locations[0]"),
    (lambda d: d["exceptions"].append({"user": "bob", "reason": "x"}), "expires_at"),
    (lambda d: d["exceptions"].append({"user": "bob", "expires_at": None}), "reason"),
    (lambda d: d["exceptions"].append({"location": "nowhere", "reason": "x",
                                        "expires_at": None}), "exceptions[0]"),
    (lambda d: d["policies"][0].update(reply="550 4.7.1 nope"), "policies[0]"),
    (lambda d: d["policies"][0].update(colour="red"), "colour"),
    (lambda d: d["policies"].append(dict(d["policies"][0])), "duplicate"),
    (lambda d: d["mechanisms"].append({"name": "PLAIN", "class": "shiny"}), "mechanisms"),
    (lambda d: d["groups"].append({"name": "g", "members": ["a@@b"]}), "groups[0]"),
    (lambda d: d["settings"].update(unknown_mechanism_class="shiny"), "settings"),
    (lambda d: d.update(format="something-else"), "format"),
    (lambda d: d.update(version=99), "version"),
    (lambda d: d.update(policies={}), "policies"),
]


@pytest.mark.parametrize("mutate,needle", BAD_IMPORTS, ids=[n for _, n in BAD_IMPORTS])
def test_import_with_one_bad_entry_changes_nothing(store, tmp_path, mutate, needle):
    ok(store, "exception", "add", "--location", "loopback", "--permanent", "--reason", "web")
    doc = json.loads(ok(store, "export"))
    doc["exceptions"] = []  # good entries that would replace the current state
    doc["policies"].append({"name": "good", "state": "off"})
    mutate(doc)
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(doc))
    before = fingerprint(store)
    proc = run(store, "import", f)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert needle in proc.stderr
    assert fingerprint(store) == before


@pytest.mark.parametrize("content", ['{"policies": [', "[]", "", "not json", '"x"'])
def test_import_rejects_non_documents(store, tmp_path, content):
    f = tmp_path / "x.json"
    f.write_text(content)
    before = fingerprint(store)
    proc = run(store, "import", f)
    assert proc.returncode == 2
    assert fingerprint(store) == before


def test_import_missing_file_is_runtime_failure(store, tmp_path):
    proc = run(store, "import", tmp_path / "absent.json")
    assert proc.returncode == 1


# ---- audit and check ----

def test_audit_records_before_and_after(store):
    ok(store, "policy", "set", "block-legacy", "--state", "report-only")
    rows = js(store, "audit", "--since", "1h")
    last = rows[-1]
    assert last["action"] == "policy set" and last["object"] == "block-legacy"
    assert last["before"]["state"] == "enforce" and last["after"]["state"] == "report-only"
    assert last["actor"]
    assert js(store, "audit", "--since", "2099-01-01") == []
    text = ok(store, "audit")
    assert "policy set" in text and "init" in text


def test_audit_generation_increments(store):
    con = sqlite3.connect(str(store / "policy.db"))
    gen = lambda: int(con.execute(
        "SELECT value FROM settings WHERE key='generation'").fetchone()[0])
    g0 = gen()
    ok(store, "group", "add", "g")
    assert gen() == g0 + 1
    run(store, "group", "add", "g")  # fails: no new generation
    assert gen() == g0 + 1
    con.close()


def test_check(store):
    out = ok(store, "check")
    assert "ok" in out
    c = js(store, "check")
    assert c["ok"] is True and c["schema_version"] == c["schema_version_expected"]
    assert c["policies"] == 1 and c["locations"] == 1


def test_check_detects_uncompilable_store(store):
    con = sqlite3.connect(str(store / "policy.db"))
    con.execute("UPDATE policies SET include_groups='ghost', include_users=''")
    con.commit()
    con.close()
    proc = run(store, "--json", "check")
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["compiles"] is False


def test_json_flag_after_command(store):
    assert json.loads(ok(store, "policy", "list", "--json"))[0]["name"] == "block-legacy"


def test_explain_service_and_enforce_from(store):
    ok(store, "policy", "set", "block-legacy", "--services", "submission", "--state",
       "report-only", "--enforce-from", "2099-01-01T00:00Z")
    rc, d = explain(store, "--user", "a", "--ip", "192.0.2.1", "--mech", "PLAIN")
    assert rc == 0 and d["policies"][0]["failed_condition"] == "service"
    rc, d = explain(store, "--user", "a", "--ip", "192.0.2.1", "--mech", "PLAIN",
                    "--service", "submission")
    assert rc == 0 and d["label"] == "would-block"
    assert d["policies"][0]["status"] == "applied" and not d["policies"][0]["enforcing"]
    rc, d = explain(store, "--user", "a", "--ip", "192.0.2.1", "--mech", "PLAIN",
                    "--service", "submission", "--at", "2099-01-02")
    assert rc == 1 and d["outcome"] == "block" and d["at"].startswith("2099-01-0")
    assert d["request"]["service"] == "submission"


def test_policy_off_and_group_exclusion(store):
    ok(store, "group", "add", "scanners", "scanner-*@example.com")
    ok(store, "policy", "set", "block-legacy", "--exclude-groups", "scanners")
    rc, d = explain(store, "--user", "scanner-3@example.com", "--ip", "192.0.2.1", "--mech",
                    "LOGIN")
    assert rc == 0 and d["policies"][0]["failed_condition"] == "user-excluded"
    rc, _ = explain(store, "--user", "alice@example.com", "--ip", "192.0.2.1", "--mech",
                    "LOGIN")
    assert rc == 1
    ok(store, "policy", "set", "block-legacy", "--state", "off")
    rc, d = explain(store, "--user", "alice@example.com", "--ip", "192.0.2.1", "--mech",
                    "LOGIN")
    assert rc == 0 and d["policies"][0]["status"] == "off"


# ---- the visibility commands' option errors, message for message ----

TIME_EXPECTED = 'expected YYYY-MM-DD[THH:MM[:SS]][Z|+HH:MM], "now" or a duration such as 30d'

# (command, options, exit status, the first line of stderr, whether the usage follows)
VISIBILITY_USAGE_ERRORS = [
    (["log"], ["--bogus"], 2, "saslgatectl: log: unknown option --bogus", True),
    (["log"], ["-x"], 2, "saslgatectl: log: unknown option -x", True),
    (["log"], ["--format"], 2, "saslgatectl: log: option --format needs a value", True),
    (["log"], ["--limit", "1", "extra", "more"], 2,
     "saslgatectl: log: unexpected argument 'extra'", True),
    (["log"], ["--", "--since"], 2, "saslgatectl: log: unexpected argument '--since'", True),
    (["log"], ["--bogus", "--help"], 2, "saslgatectl: log: unknown option --bogus", True),
    (["log"], ["--format", "nope"], 2,
     "saslgatectl: --format: 'nope' is not one of text, json, csv", False),
    (["log"], ["--since", "bogus"], 2,
     "saslgatectl: --since: 'bogus': invalid time \"bogus\": " + TIME_EXPECTED, False),
    (["log"], ["--since", "1d", "--until", "2d"], 2,
     "saslgatectl: --until: is before --since", False),
    (["log"], ["--user="], 2, "saslgatectl: --user: must not be empty", False),
    (["log"], ["--limit", "x", "--since", "bogus"], 2,
     "saslgatectl: --limit: 'x' is not a non-negative number", False),
    (["stats"], ["-q"], 2, "saslgatectl: stats: unknown option -q", True),
    (["stats"], ["--stale"], 2, "saslgatectl: stats: option --stale needs a value", True),
    (["stats"], ["extra"], 2, "saslgatectl: stats: unexpected argument 'extra'", True),
    (["stats"], ["--until", "x"], 2,
     "saslgatectl: --until: 'x': invalid time \"x\": " + TIME_EXPECTED, False),
    (["stats"], ["--since", "2026-01-01", "--until", "2025-01-01"], 2,
     "saslgatectl: --until: is before --since", False),
    (["stats"], ["--format", "nope"], 2,
     "saslgatectl: --format: 'nope' is not one of text, json, csv, prometheus", False),
    (["stats"], ["--stale", "0", "--format", "prometheus"], 2,
     "saslgatectl: --stale: '0' is not a positive number", False),
    (["status"], ["--bogus"], 2, "saslgatectl: status: unknown option --bogus", True),
    (["status"], ["-z"], 2, "saslgatectl: status: unknown option -z", True),
    (["status"], ["--integrity"], 2, "saslgatectl: status: option --integrity needs a value",
     True),
    (["status"], ["extra"], 2, "saslgatectl: status: unexpected argument 'extra'", True),
    (["status"], ["--stale", "-1"], 2, "saslgatectl: --stale: '-1' is not a positive number",
     False),
    (["status"], ["--lag-warning", "0"], 2,
     "saslgatectl: --lag-warning: '0' is not a positive number", False),
    (["status"], ["--dropped-warning", "x"], 2,
     "saslgatectl: --dropped-warning: 'x' is not a positive number", False),
    (["status"], ["--integrity", "bad"], 2,
     "saslgatectl: --integrity: 'bad' is not all, policy or none", False),
    # a monitoring plugin reports bad usage as UNKNOWN
    (["status"], ["--nagios", "--integrity", "bad"], 3,
     "saslgatectl: --integrity: 'bad' is not all, policy or none", False),
    (["status"], ["--nagios", "--bogus"], 3, "saslgatectl: status: unknown option --bogus", True),
    # getopt_long's abbreviation of --nagios is --nagios
    (["status"], ["--nag", "--bogus"], 3, "saslgatectl: status: unknown option --bogus", True),
    (["status"], ["--n", "--stale"], 3, "saslgatectl: status: option --stale needs a value",
     True),
    (["status"], ["--nagios", "extra"], 3, "saslgatectl: status: unexpected argument 'extra'",
     True),
    (["status"], ["--nagios", "--stale"], 3, "saslgatectl: status: option --stale needs a value",
     True),
    (["report", "legacy"], ["--bogus"], 2, "saslgatectl: report legacy: unknown option --bogus",
     True),
    (["report", "legacy"], ["extra"], 2,
     "saslgatectl: report legacy: unexpected argument 'extra'", True),
    (["report", "legacy"], ["--user"], 2,
     "saslgatectl: report legacy: option --user needs a value", True),
    (["report", "legacy"], ["--class", "nope"], 2,
     "saslgatectl: --class: 'nope' is not legacy or password (the report lists non-modern "
     "classes only)", False),
    (["report", "legacy"], ["--limit", "-5"], 2,
     "saslgatectl: --limit: '-5' is not a non-negative number", False),
]


@pytest.mark.parametrize("command,options,code,first,usage", VISIBILITY_USAGE_ERRORS)
def test_visibility_usage_errors_exact(store, command, options, code, first, usage):
    """Each bad command line: its exit status, nothing on stdout, and on stderr
    exactly the message (plus the usage that --help prints, for bad usage
    rather than a bad value)."""
    before = fingerprint(store)
    proc = run(store, *(command + options))
    assert proc.returncode == code, proc.stderr
    assert proc.stdout == ""
    expected = first + "\n"
    if usage:
        expected += ok(store, *(command + ["--help"]))
    assert proc.stderr == expected
    assert fingerprint(store) == before
    assert not (store / "activity.db").exists()  # rejected before anything is opened


@pytest.mark.parametrize("command,option", [
    (["log"], ["--since", "1d"]), (["stats"], ["--format", "csv"]),
    (["status"], ["--stale", "60"]), (["report", "legacy"], ["--class", "legacy"]),
])
def test_visibility_help_after_other_options(store, command, option):
    """-h and --help print the usage on stdout with status 0, after other
    options too, and open nothing."""
    helps = {ok(store, *(command + [flag])) for flag in ("-h", "--help")}
    assert len(helps) == 1 and helps.pop().startswith("usage: saslgatectl " + " ".join(command))
    proc = run(store, *(command + ["--json"] + option + ["-h"]))
    assert proc.returncode == 0 and proc.stdout.startswith("usage:") and proc.stderr == ""
    assert not (store / "activity.db").exists()
