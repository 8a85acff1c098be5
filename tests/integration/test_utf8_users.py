"""User names in UTF-8 (issue 19): two users must never become one.

jörg@example.de and jürg@example.de submit through saslgate-policyd and
saslgate-milter sharing one store; the usage table (report legacy), the
decision log (log --json) and the decision lines keep them apart and show
them as they are; an exception for one of them, written in another case,
lets only that one through, in both daemons and in explain. Bytes that are
not valid UTF-8, blanks and backslashes are escaped reversibly in text and
carried exactly in --json."""

import json
import os
import subprocess

import pytest

from milter_util import MILTER, Milter
from milter_wire import SMFIR_ACCEPT, SMFIR_REPLYCODE, session
from policyd_util import BLOCK_REPLY, CTL, DUNNO, Policyd, encode, postfix_request
from visibility_util import FAST, js, ok, run, wait_logged

JOERG = "j\u00f6rg@example.de"
JUERG = "j\u00fcrg@example.de"


@pytest.fixture
def store(tmp_path):
    d = tmp_path / "store"
    ok(d, "init")
    return str(d)


@pytest.fixture
def policyd(tmp_path, store):
    p = Policyd(tmp_path, store, settings=FAST)
    yield p
    assert p.stop() == 0, p.log_text()


@pytest.fixture
def milter(store):
    if not os.path.exists(MILTER):
        pytest.skip("saslgate-milter not built")
    m = Milter(store)
    yield m
    assert m.stop() == 0, m.output()


def ask_raw(daemon, user, ip="192.0.2.10"):
    """A PLAIN submission through the policy daemon; user may be bytes (sent
    as they are)."""
    attrs = postfix_request(sasl_method="PLAIN", client_address=ip, sasl_username="@USER@")
    data = encode(attrs)
    if isinstance(user, str):
        user = user.encode()
    data = data.replace(b"@USER@", user)
    with daemon.client() as c:
        c.send(data)
        return c.read_reply()


def milter_mail(m, user, qid):
    return session(m.address, {"i": qid, "{auth_type}": "PLAIN", "{auth_authen}": user})


def exact(s):
    """A --json string back to the bytes it stands for (invalid UTF-8 comes
    as lone surrogates, Python's surrogateescape)."""
    return s.encode("utf-8", "surrogateescape")


def explain(store, user):
    """explain --json for a PLAIN submission of user (exit status 1: it
    would be blocked)."""
    proc = run(store, "--json", "explain", "--user", user, "--ip", "192.0.2.10", "--mech",
               "PLAIN")
    assert proc.returncode in (0, 1), proc
    return json.loads(proc.stdout)


def submit_three(policyd, milter):
    """Three submissions by two people, as in the issue."""
    assert ask_raw(policyd, JOERG, "192.0.2.10") == BLOCK_REPLY
    assert ask_raw(policyd, JUERG, "192.0.2.11") == BLOCK_REPLY
    cmd, _ = milter_mail(milter, JOERG, "Q1")
    assert cmd == SMFIR_REPLYCODE


def test_two_users_stay_two(store, policyd, milter):
    submit_three(policyd, milter)
    wait_logged(store, 3)

    report = js(store, "report", "legacy")
    users = {u["user"]: u["count"] for u in report["users"]}
    assert users == {JOERG: 2, JUERG: 1}

    text = ok(store, "report", "legacy")
    assert "2 users" in text
    assert "\n%s: 2 submissions" % JOERG in text
    assert "\n%s: 1 submission" % JUERG in text
    assert "??" not in text

    log = js(store, "log")
    assert sorted((d["daemon"], d["user"]) for d in log) == sorted(
        [("policyd", JOERG), ("policyd", JUERG), ("milter", JOERG)])
    assert {d["user"] for d in js(store, "log", "--user", JUERG)} == {JUERG}
    assert [d["user"] for d in js(store, "log", "--user", JOERG)] == [JOERG, JOERG]

    # the text log shows the names as they are
    assert JOERG in ok(store, "log") and JUERG in ok(store, "log")

    # the decision lines
    policyd.wait_log("user=%s mech=PLAIN" % JOERG)
    policyd.wait_log("user=%s mech=PLAIN" % JUERG)
    assert "user=%s mech=PLAIN" % JOERG in milter.output()
    assert "??" not in policyd.log_text()


def test_exception_for_one_lets_only_that_one_through(store, policyd, milter):
    # refused before: "only printable ASCII without blanks"; the pattern is
    # written in upper case and matches by case folding
    ok(store, "exception", "add", "--user", "J\u00dcRG@EXAMPLE.DE", "--permanent",
       "--reason", "issue 19")
    patterns = [e["user"] for e in js(store, "exception", "list")]
    assert patterns == [JUERG]

    assert ask_raw(policyd, JUERG) == DUNNO
    assert ask_raw(policyd, JOERG) == BLOCK_REPLY
    assert ask_raw(policyd, "j?rg@example.de") == BLOCK_REPLY
    cmd, _ = milter_mail(milter, JUERG, "Q2")
    assert cmd == SMFIR_ACCEPT
    cmd, _ = milter_mail(milter, JOERG, "Q3")
    assert cmd == SMFIR_REPLYCODE

    for user, outcome in ((JUERG, "allow"), ("J\u00dcRG@example.de", "allow"),
                          (JOERG, "block")):
        x = explain(store, user)
        assert x["outcome"] == outcome, (user, x)

    wait_logged(store, 5)
    by_user = {}
    for d in js(store, "log"):
        by_user.setdefault(d["user"], set()).add((d["daemon"], d["outcome"]))
    assert by_user[JUERG] == {("policyd", "allow"), ("milter", "allow")}
    assert by_user[JOERG] == {("policyd", "block"), ("milter", "block")}


def test_groups_and_policy_lists_take_utf8(store):
    ok(store, "group", "add", "schweiz", JUERG, "@m\u00fcnchen.de")
    ok(store, "policy", "set", "block-legacy", "--exclude-groups", "schweiz",
       "--exclude-users", "J\u00d6RG@example.de")
    for user, outcome in ((JUERG, "allow"), (JOERG, "allow"), ("a@M\u00dcNCHEN.de", "allow"),
                          ("j\u00e4rg@example.de", "block")):
        x = explain(store, user)
        assert x["outcome"] == outcome, (user, x)


def test_invalid_patterns_are_refused(store):
    for pattern, why in ((b"j\xf6rg@example.de", b"not valid UTF-8"),
                         ("j\u00f6rg\u200b@example.de".encode(), b"printable"),
                         ("j\u00f6rg\u00a0@example.de".encode(), b"printable")):
        proc = subprocess.run([CTL, "-d", store, "exception", "add", "--user", pattern,
                               "--permanent", "--reason", "x"], capture_output=True)
        assert proc.returncode == 2, proc
        assert why in proc.stderr, proc.stderr
    assert js(store, "exception", "list") == []


def test_unsafe_bytes_are_escaped_and_exact_in_json(store, policyd):
    names = [b"j\xf6rg@example.de",       # Latin-1: not UTF-8
             b"j\\xf6rg@example.de",      # a literal backslash-x
             "j\u00f6rg@example.de\u200b".encode(),  # an invisible character
             b"j\xc3\xb6rg=x\"@example.de"]          # '=' and '"'
    for name in names:
        assert ask_raw(policyd, name) == BLOCK_REPLY
    wait_logged(store, len(names))

    # --json: the exact bytes
    assert sorted(exact(d["user"]) for d in js(store, "log")) == sorted(names)
    assert sorted(exact(u["user"]) for u in js(store, "report", "legacy")["users"]) == \
        sorted(names)

    # decision lines: escaped, reversibly, so no two print the same
    for shown in (r"user=j\xf6rg@example.de ", r"user=j\\xf6rg@example.de ",
                  "user=j\u00f6rg@example.de\\xe2\\x80\\x8b ",
                  "user=j\u00f6rg\\x3dx\\x22@example.de "):
        policyd.wait_log(shown)

    # text output: escaped the same way (without the key=value extras)
    text = run(store, "report", "legacy").stdout
    for shown in (r"j\xf6rg@example.de: ", r"j\\xf6rg@example.de: ",
                  "j\u00f6rg@example.de\\xe2\\x80\\x8b: "):
        assert "\n" + shown in text, text
    lines = [line for line in run(store, "log").stdout.splitlines()[1:] if line.strip()]
    assert len(lines) == 4 and len({line.split()[3] for line in lines}) == 4
    assert json.loads(run(store, "--json", "log").stdout)  # valid JSON throughout
