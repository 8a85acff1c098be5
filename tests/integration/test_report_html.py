"""saslgatectl report html, read back by a real browser: a store with 30 days
of known activity (several services, a report-only and a scheduled policy,
exceptions active, expiring and expired, and user names and services made to
break out of HTML), rendered by headless Chromium. The DOM it builds must
show the numbers of report legacy --json and stats --json for the same
store, every hostile value as text, and no request may leave the page; the
phone and desktop screenshots must come out.

Chromium runs with every request sent to a dead-end proxy on loopback (so
nothing leaves the machine even if the page asked for it) and with a net log,
which tells the page's own requests (made for the file:// page) from
Chromium's background traffic. A control page with two remote images proves
that the check sees requests."""

import ipaddress
import json
import os
import re
import shutil
import socket
import sqlite3
import struct
import subprocess
import threading
import time
from html.parser import HTMLParser

import pytest

from ctl_util import CTL, ROOT, js, ok, run

CHROMIUM = shutil.which("chromium")
SCHEMA = os.path.join(os.environ.get("SASLGATE_SRCDIR", ROOT), "schema")
DAY = 86400
NOW = int(time.time())

pytestmark = pytest.mark.skipif(not os.access(CTL, os.X_OK), reason="saslgatectl not built")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (Debian package chromium; "
    "contrib/install-deps installs it)")

SCRIPT_USER = "<script>alert(1)</script>@x"
ONLOAD_USER = '"onload=alert(1) x=\'@example.com'
IMG_SERVICE = "<img src=x onerror=alert(1)>"
BOLD_REASON = '<b>bold</b> & "quoted" reason'


def at(days_ago, hour=1):
    """A time days_ago days before the fixture's now, an hour off any day or
    week boundary the page or the test draws."""
    return NOW - days_ago * DAY - hour * 3600


def activity_decisions():
    """(at, user, client, mech, class, tls, service, outcome, policy,
    report_only) for 30 days, plus one decision outside the window."""
    d = []

    def add(days, user, client, mech, cls, service, outcome, policy=None, ro=None, n=1):
        for i in range(n):
            d.append((at(days, 1 + i), user, client, mech, cls, 1, service, outcome, policy, ro))

    for day in range(30):
        add(day, "alice@example.com", "192.0.2.10", "PLAIN", "legacy", "smtp", "block",
            "block-legacy", "staff-strict", n=2 if day < 10 else 1)
        add(day, "bob@example.com", "192.0.2.5", "XOAUTH2", "modern", "imap", "allow", n=2)
        if day <= 20:
            add(day, "carol@example.com", "2001:db8::5", "SCRAM-SHA-256", "password", "pop3",
                "would-block", None, "watch-scram")
        if day <= 10:
            add(day, "dave@example.net", "203.0.113.9", "PLAIN", "legacy", "smtp", "allow")
        if day <= 12:
            add(day, "frank@example.com", "192.0.2.30", "PLAIN", "legacy", "smtp",
                "block" if day < 5 else "allow", "block-legacy" if day < 5 else None)
        if day >= 15:
            add(day, "gina@example.com", "192.0.2.40", "PLAIN", "legacy", "submission", "block",
                "block-legacy")
        if day <= 12:
            add(day, "gina@example.com", "192.0.2.40", "XOAUTH2", "modern", "submission", "allow")
        if day % 3 == 0:
            add(day, None, "192.0.2.99", None, None, "smtp", "not-authenticated")
    add(5, "alice@example.com", "198.51.100.7", "LOGIN", "legacy", "smtp", "block",
        "block-legacy")
    add(3, "alice@example.com", "198.51.100.7", "LOGIN", "legacy", "smtp", "block",
        "block-legacy")
    for day in (6, 2):
        add(day, "erin@example.com", "192.0.2.20", "PLAIN", "legacy", "submission", "allow")
    for day in (3, 1):
        add(day, SCRIPT_USER, "192.0.2.66", "PLAIN", "legacy", IMG_SERVICE, "block",
            "block-legacy")
    add(2, ONLOAD_USER, "192.0.2.67", "LOGIN", "legacy", "smtp", "block", "block-legacy")
    add(40, "hank@example.com", "192.0.2.80", "PLAIN", "legacy", "smtp", "block", "block-legacy")
    return sorted(d, key=lambda x: x[0])


def network(client):
    prefix = 24 if ":" not in client else 64
    return str(ipaddress.ip_network("%s/%d" % (client, prefix), strict=False))


def make_activity(store, decisions):
    """activity.db from the migrations, the decisions stored 25 to a batch row
    and the usage table summed from them, as the daemons' writer would."""
    db = sqlite3.connect(os.path.join(str(store), "activity.db"))
    versions = sorted(int(m.group(1)) for m in
                      (re.match(r"activity-(\d+)\.sql$", f) for f in os.listdir(SCHEMA)) if m)
    for v in versions:
        with open(os.path.join(SCHEMA, "activity-%03d.sql" % v)) as f:
            db.executescript(f.read())
    db.execute("PRAGMA user_version = %d" % versions[-1])
    next_id = 1
    for i in range(0, len(decisions), 25):
        chunk = decisions[i:i + 25]
        data = [[a, None, "inst%d" % (i + k), u, c, m, cl, tls, svc, None, o, p, ro, 3]
                for k, (a, u, c, m, cl, tls, svc, o, p, ro) in enumerate(chunk)]
        db.execute("INSERT INTO decision_batches (id, daemon, first_at, last_at, n, data) "
                   "VALUES (?, 'policyd', ?, ?, ?, ?)",
                   (next_id, chunk[0][0], chunk[-1][0], len(chunk), json.dumps(data)))
        next_id += len(chunk)
    usage = {}
    for a, u, c, m, cl, tls, svc, o, p, ro in decisions:
        if u is None:
            continue
        key = (u, m, network(c))
        row = usage.setdefault(key, {"class": cl, "first": a, "count": 0})
        row.update(last=a, count=row["count"] + 1, outcome=o, client=c, tls=tls, service=svc)
    for (u, m, net), r in usage.items():
        db.execute("INSERT INTO usage (user, mech, network, mech_class, first_seen, last_seen, "
                   "count, last_outcome, last_client, last_tls, last_service) "
                   "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                   (u, m, net, r["class"], r["first"], r["last"], r["count"], r["outcome"],
                    r["client"], r["tls"], r["service"]))
    db.commit()
    db.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report_html")
    store = tmp / "store"
    ok(store, "init")
    ok(store, "policy", "add", "watch-scram", "--state", "report-only", "--mech", "password")
    ok(store, "policy", "add", "staff-strict", "--state", "report-only", "--mech",
       "legacy,password", "--include-users", "@example.com", "--enforce-from",
       time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW + 20 * DAY)))
    ok(store, "exception", "add", "--user", "dave@example.net", "--expires", "3d",
       "--reason", "migrating the scanner")
    ok(store, "exception", "add", "--user", "erin@example.com", "--permanent",
       "--reason", BOLD_REASON)
    ok(store, "exception", "add", "--user", "frank@example.com", "--expires", "30d",
       "--reason", "old phone")
    # frank's exception ran out a week ago (the CLI only takes future expiries)
    db = sqlite3.connect(os.path.join(str(store), "policy.db"))
    with db:
        db.execute("UPDATE exceptions SET expires_at = ? WHERE user_pattern = ?",
                   (NOW - 7 * DAY, "frank@example.com"))
    db.close()
    decisions = activity_decisions()
    make_activity(store, decisions)
    page = tmp / "report.html"
    ok(store, "report", "html", "--since", "30d", "-o", page)
    with open(page, encoding="utf-8") as f:
        text = f.read()
    return {"tmp": tmp, "store": store, "page": page, "html": text, "decisions": decisions}


# ---------------------------------------------------------------- a DOM


class Node:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent, self.children = tag, dict(attrs), parent, []

    def text(self):
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def all(self, pred=lambda n: True):
        for c in self.children:
            if isinstance(c, Node):
                if pred(c):
                    yield c
                yield from c.all(pred)

    def by_id(self, ident):
        found = [n for n in self.all(lambda n: n.attrs.get("id") == ident)]
        assert len(found) == 1, "id %s: %d elements" % (ident, len(found))
        return found[0]


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


class DomBuilder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {}, None)
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        node = Node(tag, attrs, self.cur)
        self.cur.children.append(node)
        if tag not in VOID:
            self.cur = node

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, attrs, self.cur))

    def handle_endtag(self, tag):
        n = self.cur
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.children.append(data)


def parse(text):
    b = DomBuilder()
    b.feed(text)
    b.close()
    return b.root


# ---------------------------------------------------------------- Chromium


class DeadEndProxy:
    """An HTTP proxy on loopback that answers 403 to everything and records
    the request lines: where Chromium sends anything it would fetch."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(32)
        self.port = self.sock.getsockname()[1]
        self.requests = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.settimeout(2)
            try:
                self.requests.append(conn.recv(4096).split(b"\r\n")[0].decode("latin-1"))
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")
            except OSError:
                pass
            conn.close()

    def close(self):
        self.sock.close()


@pytest.fixture(scope="module")
def browser(site):
    proxy = DeadEndProxy()
    runs = [0]

    def chromium(url_path, *args, netlog=None):
        runs[0] += 1
        cmd = [CHROMIUM, "--headless", "--disable-gpu", "--no-first-run",
               "--no-default-browser-check", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--disable-extensions",
               "--hide-scrollbars", "--user-data-dir=%s" % (site["tmp"] / ("profile%d" % runs[0])),
               "--proxy-server=http://127.0.0.1:%d" % proxy.port,
               "--proxy-bypass-list=<-loopback>",
               "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"]
        if os.geteuid() == 0:
            cmd.append("--no-sandbox")
        if netlog:
            cmd.append("--log-net-log=%s" % netlog)
        cmd += list(args) + ["file://" + str(url_path)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout

    yield chromium
    proxy.close()


@pytest.fixture(scope="module")
def dom(site, browser):
    return parse(browser(site["page"], "--dump-dom"))


def page_requests(netlog_path):
    """The URL requests the net log shows made for the file:// page itself
    (its network isolation key or site is file://), not Chromium's own."""
    with open(netlog_path) as f:
        log = json.load(f)
    types = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    found = []
    for e in log["events"]:
        p = e.get("params") or {}
        if types.get(e["type"]) != "URL_REQUEST_START_JOB" or "url" not in p:
            continue
        if p["url"].startswith("file:"):
            continue
        if ("file://" in p.get("network_isolation_key", "")
                or "file://" in p.get("site_for_cookies", "") or p.get("initiator") == "null"):
            found.append(p["url"])
    return found


# ---------------------------------------------------------------- helpers


def rows(node, attr):
    return [n for n in node.all(lambda n: n.tag == "tr" and attr in n.attrs)]


def expected_day_counts(decisions, since):
    counts = {}
    for a, u, c, m, cl, tls, svc, o, p, ro in decisions:
        if a < since or cl is None:
            continue
        key = (time.strftime("%Y-%m-%d", time.gmtime(a)), cl)
        counts[key] = counts.get(key, 0) + 1
    return counts


# ---------------------------------------------------------------- tests


@needs_chromium
def test_worklist_in_the_browser_matches_report_legacy(site, dom):
    legacy = js(site["store"], "report", "legacy", "--since", "30d")
    want = {u["user"]: u for u in legacy["users"]}
    got = {r.attrs["data-user"]: r for r in rows(dom.by_id("worklist"), "data-user")}
    assert set(got) == set(want) and len(want) == 8, sorted(got)
    order = [r.attrs["data-user"] for r in rows(dom.by_id("worklist"), "data-user")]
    assert order == [u["user"] for u in legacy["users"]], "not report legacy's order"
    for name, u in want.items():
        r = got[name]
        assert int(r.attrs["data-count"]) == u["count"], name
        assert r.attrs["data-first"] == u["first_seen"] and r.attrs["data-last"] == u["last_seen"]
        assert r.attrs["data-mechs"].split(",") == u["mechanisms"], name
        assert r.attrs["data-networks"].split(",") == u["networks"], name
        assert r.attrs["data-coverage"] == u["covered"], name
        assert r.attrs["data-expires"] == (u["coverage_expires"] or ""), name
        cells = [c for c in r.children if isinstance(c, Node) and c.tag == "td"]
        assert cells[0].text() == name
        assert cells[6].text().replace(",", "") == str(u["count"])
        for mech in u["mechanisms"]:
            assert mech in cells[1].text()
    # what the exception column says, with owner and reason
    dave = got["dave@example.net"].text()
    assert "migrating the scanner" in dave and "until" in dave
    assert BOLD_REASON in got["erin@example.com"].text()
    assert "permanent" in got["erin@example.com"].text()
    assert got["frank@example.com"].attrs["data-coverage"] == "none"
    assert "hank@example.com" not in got, "last seen before the window"


@needs_chromium
def test_headline_in_the_browser(site, dom):
    legacy = js(site["store"], "report", "legacy", "--since", "30d")
    users = dom.by_id("kpi-users")
    assert int(users.attrs["data-users"]) == len(legacy["users"])
    assert int(users.attrs["data-uncovered"]) == sum(
        1 for u in legacy["users"] if u["covered"] == "none")
    nums = [n.text() for n in users.all(lambda n: n.attrs.get("class") == "num")]
    assert nums == [str(len(legacy["users"]))]
    # the legacy share of the last 7 days against the weeks before
    week = [d for d in site["decisions"] if d[4] is not None and d[0] >= NOW - 7 * DAY]
    before = [d for d in site["decisions"]
              if d[4] is not None and NOW - 30 * DAY <= d[0] < NOW - 7 * DAY]
    share = dom.by_id("kpi-share")
    assert int(share.attrs["data-week-total"]) == len(week)
    assert int(share.attrs["data-week-legacy"]) == sum(1 for d in week if d[4] == "legacy")
    assert int(share.attrs["data-before-total"]) == len(before)
    assert int(share.attrs["data-before-legacy"]) == sum(1 for d in before if d[4] == "legacy")
    pct = 100.0 * sum(1 for d in week if d[4] == "legacy") / len(week)
    assert "%.1f%%" % pct in share.text()
    # gina went from PLAIN to XOAUTH2 in the period; bob was always modern
    moved = dom.by_id("kpi-moved")
    assert moved.attrs["data-moved"] == "1"
    assert dom.by_id("moved").text() == "Moved to modern: gina@example.com."


@needs_chromium
def test_charts_in_the_browser_match_stats(site, dom):
    stats = js(site["store"], "stats", "--since", "30d")
    bars = list(dom.by_id("chart-class").all(lambda n: n.tag == "rect" and "data-n" in n.attrs))
    by_class = {}
    by_day = {}
    for b in bars:
        by_class[b.attrs["data-series"]] = by_class.get(b.attrs["data-series"], 0) + int(
            b.attrs["data-n"])
        by_day[(b.attrs["data-x"], b.attrs["data-series"])] = int(b.attrs["data-n"])
    assert by_class == {k: v for k, v in stats["classes"].items() if v}
    assert by_day == expected_day_counts(site["decisions"], NOW - 30 * DAY)
    svg = dom.by_id("chart-class")
    texts = [t.text() for t in svg.all(lambda n: n.tag == "text")]
    assert {"legacy", "password", "modern", "submissions", "day (UTC)"} <= set(texts)
    services = {}
    for b in dom.by_id("chart-service").all(lambda n: n.tag == "rect" and "data-n" in n.attrs):
        services[b.attrs["data-series"]] = services.get(b.attrs["data-series"], 0) + int(
            b.attrs["data-n"])
    want = {}
    for d in site["decisions"]:
        if d[4] is not None and d[0] >= NOW - 30 * DAY:
            want[d[6]] = want.get(d[6], 0) + 1
    assert services == want
    assert IMG_SERVICE in [t.text() for t in dom.by_id("chart-service").all(
        lambda n: n.tag == "text")], "the legend shows the service as text"


@needs_chromium
def test_report_only_policies_and_exceptions_in_the_browser(site, dom):
    stats = js(site["store"], "stats", "--since", "30d")
    pol = {r.attrs["data-policy"]: r for r in rows(dom.by_id("report-only"), "data-policy")}
    assert set(pol) == {"watch-scram", "staff-strict"}, "block-legacy enforces"
    for name, r in pol.items():
        assert int(r.attrs["data-refused"]) == stats["policies"][name]["would-block"]
    assert pol["watch-scram"].attrs["data-users"] == "1"
    assert pol["watch-scram"].attrs["data-allowed"] == pol["watch-scram"].attrs["data-refused"]
    assert pol["staff-strict"].attrs["data-users"] == "1"
    assert pol["staff-strict"].attrs["data-allowed"] == "0", "alice is blocked already"
    assert "not scheduled" in pol["watch-scram"].text()
    expiring = rows(dom.by_id("expiring"), "data-exception")
    assert [r.text().count("dave@example.net") for r in expiring] == [1]
    assert "migrating the scanner" in expiring[0].text()
    hit = rows(dom.by_id("expired-hit"), "data-exception")
    assert len(hit) == 1 and "frank@example.com" in hit[0].text()
    assert hit[0].attrs["data-hit-users"] == "1"
    assert dom.by_id("kpi-exceptions").attrs["data-expiring"] == "1"
    assert dom.by_id("kpi-exceptions").attrs["data-expired-hit"] == "1"


@needs_chromium
def test_values_from_the_store_show_as_text(site, dom):
    users = [r.attrs["data-user"] for r in rows(dom.by_id("worklist"), "data-user")]
    assert SCRIPT_USER in users and ONLOAD_USER in users
    cells = [n.text() for n in dom.all(lambda n: n.tag == "td" and "user" in
                                       n.attrs.get("class", ""))]
    assert SCRIPT_USER in cells and ONLOAD_USER in cells
    assert not list(dom.all(lambda n: n.tag in ("script", "img", "iframe", "object"))), \
        "markup from the store became elements"
    for n in dom.all():
        bad = [a for a in n.attrs if a.startswith("on") or a in ("src", "href")]
        assert not bad, "attribute %r on <%s>" % (bad, n.tag)
    assert IMG_SERVICE in dom.by_id("worklist").text()
    assert BOLD_REASON in dom.by_id("worklist").text()
    assert not list(dom.all(lambda n: n.tag == "b"))
    # and in the file itself, before any parser: only escaped forms
    raw = site["html"]
    assert "<script" not in raw and "<img" not in raw and "<b>" not in raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt;@x" in raw
    assert "&quot;onload=alert(1) x=&#39;@example.com" in raw


def test_the_page_references_nothing_outside(site):
    """No element or attribute that loads anything, no URL anywhere (the
    hostile values in the store hold no URL either)."""
    raw = site["html"]
    assert not re.search(r"https?:|ftp:|//[a-z0-9]", raw, re.I), "a URL in the page"
    page = parse(raw)
    loaders = {"link", "script", "iframe", "frame", "object", "embed", "img", "image", "base",
               "audio", "video", "source", "track", "picture", "use", "form", "input", "a"}
    assert not [n.tag for n in page.all(lambda n: n.tag in loaders)]
    fetching = {"src", "href", "xlink:href", "srcset", "action", "formaction", "poster", "data",
                "background", "ping", "manifest"}
    for n in page.all():
        assert not fetching & set(n.attrs), (n.tag, n.attrs)
        assert "url(" not in n.attrs.get("style", "")
    css = "".join(n.text() for n in page.all(lambda n: n.tag == "style"))
    assert css and "url(" not in css and "@import" not in css and "@font-face" not in css
    assert "default-src 'none'" in raw


@needs_chromium
def test_no_request_leaves_the_page(site, browser):
    # the detector works: a page with remote images makes requests it sees
    control = site["tmp"] / "control.html"
    control.write_text('<!DOCTYPE html><p>control</p><img src="http://example.invalid/a.png">'
                       '<img src="https://example.com/b.png">')
    browser(control, "--dump-dom", netlog=site["tmp"] / "control.netlog")
    assert sorted(page_requests(site["tmp"] / "control.netlog")) == [
        "http://example.invalid/a.png", "https://example.com/b.png"]
    # the page, as written and without its Content-Security-Policy (which
    # would hide a reference the page itself makes)
    bare = site["tmp"] / "report-no-csp.html"
    bare.write_text(re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "",
                           site["html"]), encoding="utf-8")
    assert "Content-Security-Policy" not in bare.read_text(encoding="utf-8")
    for path in (site["page"], bare):
        netlog = str(path) + ".netlog"
        browser(path, "--dump-dom", netlog=netlog)
        assert page_requests(netlog) == [], "the page made requests"


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", path
    return struct.unpack(">II", head[16:24])


@needs_chromium
@pytest.mark.parametrize("name,width,height", [("phone", 390, 844), ("desktop", 1280, 900)])
def test_screenshots(site, browser, name, width, height):
    shot = site["tmp"] / ("report-%s.png" % name)
    browser(site["page"], "--screenshot=%s" % shot, "--window-size=%d,%d" % (width, height))
    assert png_size(shot) == (width, height)
    # a blank or error page compresses to a few kB; this one has charts and text
    assert os.path.getsize(shot) > 20000, os.path.getsize(shot)


def test_options_and_errors(site, tmp_path):
    out = tmp_path / "page.html"
    ok(site["store"], "report", "html", "--since", "7d", "--limit", "2", "-o", out)
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert text.count("<tr data-user=") == 2 and 'data-shown="2"' in text
    assert "saslgatectl report legacy --since" in text, "says where the rest is"
    stdout = ok(site["store"], "report", "html", "--since", "7d")
    assert stdout.startswith("<!DOCTYPE html>")
    everyone = ok(site["store"], "report", "html", "--since", "30d", "--limit", "0")
    assert everyone.count("<tr data-user=") == 8, "--limit 0: every user"
    for args in (["--since", "tomorrow-ish"], ["--limit", "-1"], ["extra"], ["-o", ""],
                 ["--since", "+3d"]):
        proc = run(site["store"], "report", "html", *args)
        assert proc.returncode == 2, (args, proc.stderr)
    proc = run(site["store"], "report", "html", "-o", tmp_path / "no" / "such" / "dir.html")
    assert proc.returncode == 1 and "dir.html" in proc.stderr
    proc = run(tmp_path / "empty", "report", "html")
    assert proc.returncode == 1 and proc.stdout == ""


def test_weekly_mail_carries_the_page(site, tmp_path):
    """contrib/cron/saslgate-weekly-report with a sendmail that keeps the
    mail: a MIME mail whose HTML part and attachment are the page."""
    import email
    import email.policy

    kept = tmp_path / "mail.eml"
    sendmail = tmp_path / "sendmail"
    sendmail.write_text('#!/bin/sh\ntest "$1" = -t || exit 64\ncat > "%s"\n' % kept)
    sendmail.chmod(0o755)
    env = dict(os.environ, SENDMAIL=str(sendmail),
               PATH=os.path.dirname(CTL) + os.pathsep + os.environ.get("PATH", ""))
    script = os.path.join(os.environ.get("SASLGATE_SRCDIR", ROOT), "contrib", "cron",
                          "saslgate-weekly-report")
    proc = subprocess.run(["sh", script, "postmaster@example.com", str(site["store"]), "7d",
                           "30d"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    raw = kept.read_bytes()
    assert max(len(line) for line in raw.split(b"\n")) <= 998, "a line too long for SMTP"
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["To"] == "postmaster@example.com" and msg.get_content_type() == "multipart/mixed"
    parts = list(msg.walk())
    htmls = [p for p in parts if p.get_content_type() == "text/html"]
    assert len(htmls) == 2
    assert htmls[0].get_content_disposition() is None
    assert htmls[1].get_filename().startswith("saslgate-report-")
    for p in htmls:
        page = p.get_content()
        assert page.startswith("<!DOCTYPE html>") and 'id="worklist"' in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;@x" in page and "<script" not in page
    plain = [p for p in parts if p.get_content_type() == "text/plain"][0].get_content()
    assert "alice@example.com" in plain
    csv_part = [p for p in parts if p.get_content_type() == "text/csv"][0]
    assert csv_part.get_content().startswith("user,user_count,mech")
