"""Credentials, permissions and the admin interface (issue 5, points 1, 2, 5).

One warrend with --auth required for the module (every REST request and AMQP login
needs a registered user), and one in the default loopback mode for the checks that
concern `make run`. Real clients: requests, pika, py-amqp, and the warrenctl binary.

  admin        the admin token warrend wrote to DATA/admin.token (mode 0600)
  ctl(...)     runs build/warrenctl against the module's server with that token
  two tenants  ta (user alice) and tb (user bob), each granted ".*" on its own tenant;
               the cross-tenant matrix checks that alice can do nothing in tb
"""

import os
import statistics
import subprocess
import time
import uuid

import pytest
import requests

import warren as wl

pika = pytest.importorskip("pika")
amqp = pytest.importorskip("amqp")

REPO = wl.REPO_ROOT


def ctl_bin():
    p = os.environ.get("WARRENCTL_BIN", os.path.join(REPO, "build", "warrenctl"))
    return p if os.path.isabs(p) else os.path.join(REPO, p)


def read_token(w):
    with open(os.path.join(w.data_dir, "admin.token")) as f:
        return f.read().strip()


class Server:
    def __init__(self, w):
        self.w = w
        self.token = read_token(w)

    def ctl(self, *args, token=True, env_token=False):
        argv = [ctl_bin(), "--url", self.w.url]
        env = dict(os.environ)
        env.pop("WARREN_TOKEN", None)
        if token and not env_token:
            argv += ["--token", self.token]
        if env_token:
            env["WARREN_TOKEN"] = self.token
        return subprocess.run(argv + list(args), capture_output=True, text=True, timeout=30,
                              env=env)

    def ok(self, *args):
        r = self.ctl(*args)
        assert r.returncode == 0, (args, r.returncode, r.stderr)
        return r.stdout


@pytest.fixture(scope="module")
def srv():
    w = wl.start_or_fail(wl.Warren(shards=2,
                                   extra_args=["--auth", "required", "--store", "memory"]))
    s = Server(w)
    s.ok("tenant", "add", "ta")
    s.ok("tenant", "add", "tb")
    s.ok("user", "add", "alice", "alice-pw")
    s.ok("user", "add", "bob", "bob-pw")
    s.ok("grant", "alice", "ta")
    s.ok("grant", "bob", "tb")
    yield s
    rc = w.stop()
    tail = w.log_tail()
    w.cleanup()
    assert rc == 0, "warrend exit status %r\n%s" % (rc, tail)


def rest(s, method, path, user=None, password=None, token=None, project="ta", **kw):
    h = {"Client-ID": str(uuid.uuid4()), "X-Project-Id": project}
    if token:
        h["X-Auth-Token"] = token
    auth = (user, password) if user else None
    return requests.request(method, s.w.url + path, headers=h, auth=auth, timeout=30, **kw)


def pika_conn(s, user, password, vhost="/"):
    return pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", s.w.amqp_port, vhost, pika.PlainCredentials(user, password),
        connection_attempts=1, socket_timeout=10))


# --------------------------------------------------------------------------- admin

def test_admin_token_file_mode(srv):
    path = os.path.join(srv.w.data_dir, "admin.token")
    st = os.stat(path)
    assert st.st_mode & 0o777 == 0o600
    assert len(srv.token) == 64 and int(srv.token, 16) >= 0


def test_cli_every_command(srv):
    assert srv.ok("tenant", "add", "tc") == ""
    assert "tc" in srv.ok("tenant", "list").split()
    assert srv.ok("user", "add", "carol", "pw") == ""
    assert "carol" in srv.ok("user", "list").split()
    assert srv.ok("grant", "carol", "tc", "^c", "^w", "^r") == ""
    tok = srv.ok("token", "add", "carol")
    assert tok.endswith("\n") and len(tok.strip()) == 64 and tok.count("\n") == 1
    assert srv.ok("quota", "set", "tc", "max-queues", "10") == ""
    assert srv.ok("quota", "list", "tc").split() == ["max-queues", "10"]
    assert srv.ok("token", "del", tok.strip()) == ""
    assert srv.ok("revoke", "carol", "tc") == ""
    assert srv.ok("user", "del", "carol") == ""
    assert srv.ok("tenant", "del", "tc") == ""
    assert "tc" not in srv.ok("tenant", "list").split()
    # $WARREN_TOKEN works as --token
    r = srv.ctl("tenant", "list", env_token=True)
    assert r.returncode == 0 and "ta" in r.stdout


@pytest.mark.parametrize("args,code", [
    (("tenant", "del", "no-such"), 1),
    (("revoke", "alice", "tb"), 1),
    (("token", "add", "nobody"), 1),
    (("token", "del", "0" * 64), 1),
    (("grant", "alice", "ta", "(", ".*", ".*"), 1),
    (("quota", "set", "ta", "max-nothing", "1"), 1),
    (("quota", "set", "ta", "max-queues", "-1"), 2),
    (("grant", "alice"), 2),
    (("tenant",), 2),
    (("frobnicate",), 2),
])
def test_cli_errors_are_one_line(srv, args, code):
    r = srv.ctl(*args)
    assert r.returncode == code, (args, r.returncode, r.stderr)
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("warrenctl: "), r.stderr
    assert r.stdout == ""


def test_admin_api_needs_admin(srv):
    r = srv.ctl("tenant", "list", token=False)
    assert r.returncode == 1 and "401" in r.stderr
    tok = srv.ok("token", "add", "alice").strip()
    r = requests.get(srv.w.url + "/admin/v1/tenants", headers={"X-Auth-Token": tok}, timeout=10)
    wl.assert_error(r, 403)
    r = requests.get(srv.w.url + "/admin/v1/tenants", auth=("alice", "alice-pw"), timeout=10)
    wl.assert_error(r, 403)
    r = requests.get(srv.w.url + "/admin/v1/tenants", headers={"X-Auth-Token": srv.token},
                     timeout=10)
    assert r.status_code == 200 and {"ta", "tb", "default"} <= set(r.json()["tenants"])


def test_tenant_with_queues_is_not_deleted(srv):
    srv.ok("tenant", "add", "td")
    srv.ok("grant", "alice", "td")
    r = rest(srv, "PUT", "/v2/queues/q1", "alice", "alice-pw", project="td")
    assert r.status_code == 201, wl.describe(r)
    r = srv.ctl("tenant", "del", "td")
    assert r.returncode == 1 and "409" in r.stderr
    assert rest(srv, "DELETE", "/v2/queues/q1", "alice", "alice-pw",
                project="td").status_code == 204
    srv.ok("tenant", "del", "td")


# --------------------------------------------------------------------------- REST

def test_rest_needs_credentials(srv):
    r = rest(srv, "GET", "/v2/queues")
    doc = wl.assert_error(r, 401)
    assert "description" in doc
    wl.assert_error(rest(srv, "GET", "/v2/queues", token="f" * 64), 401)
    wl.assert_error(rest(srv, "GET", "/v2/queues", "alice", "wrong"), 401)
    assert rest(srv, "GET", "/v2/queues", "alice", "alice-pw").status_code == 200


def test_rest_token_works_until_deleted(srv):
    tok = srv.ok("token", "add", "alice").strip()
    assert rest(srv, "PUT", "/v2/queues/tq", token=tok).status_code == 201
    r = rest(srv, "POST", "/v2/queues/tq/messages", token=tok, json={"messages": [{"body": 1}]})
    assert r.status_code == 201
    srv.ok("token", "del", tok)
    wl.assert_error(rest(srv, "GET", "/v2/queues/tq/stats", token=tok), 401)


def test_rest_project_not_granted_is_403(srv):
    wl.assert_error(rest(srv, "GET", "/v2/queues", "alice", "alice-pw", project="tb"), 403)
    wl.assert_error(rest(srv, "GET", "/v2/queues", "alice", "alice-pw", project="unknown"), 403)


def test_rest_regexes_and_visible_list(srv):
    srv.ok("user", "add", "rx", "rx-pw")
    srv.ok("grant", "rx", "ta", "^rx-", "^rx-w", "^rx-r")
    admin = {"X-Auth-Token": srv.token}
    for q in ("rx-w1", "rx-r1", "other-q"):
        r = rest(srv, "PUT", "/v2/queues/" + q, token=srv.token)
        assert r.status_code in (201, 204), wl.describe(r)
    assert rest(srv, "PUT", "/v2/queues/rx-new", "rx", "rx-pw").status_code == 201
    wl.assert_error(rest(srv, "PUT", "/v2/queues/zz", "rx", "rx-pw"), 403)
    msg = {"messages": [{"body": "m"}]}
    assert rest(srv, "POST", "/v2/queues/rx-w1/messages", "rx", "rx-pw", json=msg).status_code == 201
    wl.assert_error(rest(srv, "POST", "/v2/queues/rx-r1/messages", "rx", "rx-pw", json=msg), 403)
    wl.assert_error(rest(srv, "GET", "/v2/queues/rx-w1/messages", "rx", "rx-pw"), 403)
    assert rest(srv, "GET", "/v2/queues/rx-r1/messages", "rx", "rx-pw").status_code in (200, 204)
    names = [q["name"] for q in
             rest(srv, "GET", "/v2/queues?limit=20", "rx", "rx-pw").json()["queues"]]
    assert "other-q" not in names and "rx-w1" in names
    del admin


# --------------------------------------------------------------------------- the matrix

def _rest_matrix(srv):
    """Everything bob may do in tb, tried by alice with her own credentials."""
    assert rest(srv, "PUT", "/v2/queues/bq", "bob", "bob-pw", project="tb").status_code in (201, 204)
    r = rest(srv, "POST", "/v2/queues/bq/messages", "bob", "bob-pw", project="tb",
             json={"messages": [{"body": "secret"}]})
    mid = r.json()["resources"][0].rsplit("/", 1)[-1]
    r = rest(srv, "POST", "/v2/queues/bq/claims", "bob", "bob-pw", project="tb",
             json={"ttl": 60, "grace": 60})
    cid = wl.claim_id_from_href(r.json()["messages"][0]["href"]) if r.status_code == 201 else "0" * 24
    tries = [
        ("PUT", "/v2/queues/bq", None), ("PATCH", "/v2/queues/bq", None),
        ("DELETE", "/v2/queues/bq", None), ("GET", "/v2/queues/bq", None),
        ("GET", "/v2/queues/bq/stats", None), ("POST", "/v2/queues/bq/purge", {}),
        ("POST", "/v2/queues/bq/messages", {"messages": [{"body": "x"}]}),
        ("GET", "/v2/queues/bq/messages", None),
        ("GET", "/v2/queues/bq/messages/" + mid, None),
        ("DELETE", "/v2/queues/bq/messages/" + mid, None),
        ("DELETE", "/v2/queues/bq/messages?pop=1", None),
        ("POST", "/v2/queues/bq/claims", {"ttl": 60, "grace": 60}),
        ("GET", "/v2/queues/bq/claims/" + cid, None),
        ("PATCH", "/v2/queues/bq/claims/" + cid, {"ttl": 60}),
        ("DELETE", "/v2/queues/bq/claims/" + cid, None),
        ("GET", "/v2/queues", None),
    ]
    for method, path, body in tries:
        for cred in ({"user": "alice", "password": "alice-pw"},):
            r = rest(srv, method, path, project="tb", json=body, **cred)
            assert r.status_code == 403, "alice %s %s -> %s" % (method, path, wl.describe(r))


def test_cross_tenant_rest(srv):
    _rest_matrix(srv)
    # bob's message is still there, untouched
    r = rest(srv, "GET", "/v2/queues/bq/stats", "bob", "bob-pw", project="tb")
    assert r.json()["messages"]["total"] == 1


def test_cross_tenant_amqp(srv):
    # bob builds topology in tb
    c = pika_conn(srv, "bob", "bob-pw", "tb")
    ch = c.channel()
    ch.exchange_declare("bx", "direct")
    ch.queue_declare("bq2")
    ch.queue_bind("bq2", "bx", "k")
    ch.basic_publish("bx", "k", b"secret")
    c.close()
    # alice cannot even open tb
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError):
        pika_conn(srv, "alice", "alice-pw", "tb")
    # py-amqp too
    conn = amqp.Connection(host="127.0.0.1:%d" % srv.w.amqp_port, userid="alice",
                           password="alice-pw", virtual_host="tb", connect_timeout=5)
    with pytest.raises(amqp.exceptions.NotAllowed) as ei:
        conn.connect()
    assert "access to vhost 'tb' refused for user 'alice'" in str(ei.value)
    # bob's data is untouched
    c = pika_conn(srv, "bob", "bob-pw", "tb")
    assert c.channel().queue_declare("bq2", passive=True).method.message_count == 1
    c.close()


@pytest.mark.parametrize("op", ["declare_q", "delete_q", "purge", "get", "consume", "publish",
                                "declare_x", "delete_x", "bind_q", "bind_x"])
def test_amqp_permissions_within_a_tenant(srv, op):
    """A user with a vhost but narrow regexes: every kind of operation is refused
    with a 403 channel close, and the connection survives."""
    srv.ok("user", "add", "narrow", "n-pw")
    srv.ok("grant", "narrow", "tb", "^n-", "^n-", "^n-")
    c = pika_conn(srv, "bob", "bob-pw", "tb")
    ch = c.channel()
    ch.exchange_declare("bx", "direct")
    ch.queue_declare("bq2")
    c.close()
    c = pika_conn(srv, "narrow", "n-pw", "tb")
    ch = c.channel()
    ch.queue_declare("n-q")
    ch.exchange_declare("n-x", "fanout")
    actions = {
        "declare_q": lambda: ch.queue_declare("bq3"),
        "delete_q": lambda: ch.queue_delete("bq2"),
        "purge": lambda: ch.queue_purge("bq2"),
        "get": lambda: ch.basic_get("bq2"),
        "consume": lambda: ch.basic_consume("bq2", lambda *a: None),
        "publish": lambda: (ch.confirm_delivery(), ch.basic_publish("bx", "k", b"x")),
        "declare_x": lambda: ch.exchange_declare("bx2", "direct"),
        "delete_x": lambda: ch.exchange_delete("bx"),
        "bind_q": lambda: ch.queue_bind("n-q", "bx", "k"),
        "bind_x": lambda: ch.exchange_bind("n-x", "bx", "k"),
    }
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        actions[op]()
        ch.basic_get("n-q")  # a round trip, so an async refusal surfaces
    assert ei.value.reply_code == 403
    assert "refused for user 'narrow'" in ei.value.reply_text
    assert c.is_open
    c.close()


def test_amqp_alternate_exchange_permissions(srv):
    """RabbitMQ (rabbit_channel, exchange.declare) asks read on a new exchange and
    write on its alternate-exchange, only when it creates the exchange."""
    srv.ok("user", "add", "aeu", "aeu-pw")
    srv.ok("grant", "aeu", "ta", "^p-", "^p-w", "^p-r")
    c = pika_conn(srv, "alice", "alice-pw", "ta")
    c.channel().exchange_declare("p-made", "direct", arguments={"alternate-exchange": "zz"})
    c.close()
    c = pika_conn(srv, "aeu", "aeu-pw", "ta")
    for x, ae, refused in (("p-x1", "p-w-ae", "p-x1"), ("p-r-x", "zz", "zz")):
        ch = c.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
            ch.exchange_declare(x, "fanout", arguments={"alternate-exchange": ae})
        assert ei.value.reply_code == 403
        assert ei.value.reply_text == ("ACCESS_REFUSED - access to exchange '%s' in vhost 'ta' "
                                       "refused for user 'aeu'" % refused), ei.value.reply_text
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
            c.channel().exchange_declare(x, "fanout", passive=True)
        assert ei.value.reply_code == 404  # nothing was created
    ch = c.channel()
    ch.exchange_declare("p-r-ok", "fanout", arguments={"alternate-exchange": "p-w-ae"})
    # An existing exchange: only configure is checked, as RabbitMQ.
    ch.exchange_declare("p-made", "direct", arguments={"alternate-exchange": "zz"})
    assert c.is_open
    c.close()


# --------------------------------------------------------------------------- login

def test_guest_refused_on_new_tenant_and_allowed_on_default(srv):
    c = pika_conn(srv, "guest", "guest")
    c.close()
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError):
        pika_conn(srv, "guest", "guest", "ta")
    wl.assert_error(rest(srv, "GET", "/v2/queues", "guest", "guest", project="ta"), 403)


def test_wrong_password_and_unknown_user_refused(srv):
    for user, pw in (("alice", "nope"), ("nobody", "nope")):
        with pytest.raises((pika.exceptions.ProbableAuthenticationError,
                            pika.exceptions.AuthenticationError)):
            pika_conn(srv, user, pw, "ta")


def _login_ms(srv, user, pw):
    t = time.monotonic()
    try:
        pika_conn(srv, user, pw, "ta").close()
    except pika.exceptions.AMQPError:
        pass
    return (time.monotonic() - t) * 1000


def test_unknown_user_takes_as_long_as_wrong_password(srv):
    """Median of 9 attempts each, interleaved: within 40% + 15 ms of each other
    (the Argon2id verification is ~20-50 ms; the machine is shared and noisy)."""
    wrong, unknown = [], []
    for _ in range(9):
        wrong.append(_login_ms(srv, "alice", "not-her-password"))
        unknown.append(_login_ms(srv, "no-such-user-x", "not-her-password"))
    mw, mu = statistics.median(wrong), statistics.median(unknown)
    assert abs(mw - mu) <= 0.4 * max(mw, mu) + 15, (mw, mu, wrong, unknown)
    assert mu >= 5, "an unknown user must cost a verification too (%.1f ms)" % mu


def test_basic_cache_makes_repeat_requests_cheap(srv):
    rest(srv, "GET", "/v2/queues", "alice", "alice-pw")
    t = time.monotonic()
    for _ in range(20):
        assert rest(srv, "GET", "/v2/queues", "alice", "alice-pw").status_code == 200
    assert (time.monotonic() - t) / 20 < 0.5


def _auth_counters(srv):
    """(verifications, cache hits) from /metrics (no credentials needed there)."""
    text = requests.get(srv.w.url + "/metrics", timeout=30).text
    vals = {}
    for line in text.splitlines():
        if line.startswith(("warren_auth_verifications_total ", "warren_auth_cache_hits_total ")):
            k, v = line.split()
            vals[k] = int(v)
    return vals["warren_auth_verifications_total"], vals["warren_auth_cache_hits_total"]


def test_amqp_logins_use_the_verified_password_cache(srv):
    """20 AMQP logins of one user cost one Argon2id verification, not 20 (pika PLAIN
    and py-amqp AMQPLAIN); a wrong password still misses the cache, costs a
    verification and is refused; a changed password ends the cached login."""
    srv.ok("user", "add", "cachy", "cachy-pw")
    srv.ok("grant", "cachy", "ta")
    v0, h0 = _auth_counters(srv)
    for i in range(20):
        if i % 2:
            c = amqp.Connection(host="127.0.0.1:%d" % srv.w.amqp_port, userid="cachy",
                                password="cachy-pw", virtual_host="ta", login_method="AMQPLAIN")
            c.connect()
            c.channel().queue_declare("cachy-q", auto_delete=True)
            c.close()
        else:
            c = pika_conn(srv, "cachy", "cachy-pw", "ta")
            c.channel().queue_declare("cachy-q", auto_delete=True)
            c.close()
    v1, h1 = _auth_counters(srv)
    assert v1 - v0 == 1, "20 logins took %d verifications" % (v1 - v0)
    assert h1 - h0 == 19

    with pytest.raises((pika.exceptions.ProbableAuthenticationError,
                        pika.exceptions.AuthenticationError)):
        pika_conn(srv, "cachy", "not-cachys", "ta")
    v2, h2 = _auth_counters(srv)
    assert (v2 - v1, h2 - h1) == (1, 0)

    # A password change empties the cache: the old password is refused at once,
    # the new one takes a verification.
    srv.ok("user", "add", "cachy", "cachy-pw2")
    with pytest.raises((pika.exceptions.ProbableAuthenticationError,
                        pika.exceptions.AuthenticationError)):
        pika_conn(srv, "cachy", "cachy-pw", "ta")
    pika_conn(srv, "cachy", "cachy-pw2", "ta").close()
    v3, _ = _auth_counters(srv)
    assert v3 - v2 == 2
    # A deleted user's cached login is gone too.
    srv.ok("user", "del", "cachy")
    with pytest.raises((pika.exceptions.ProbableAuthenticationError,
                        pika.exceptions.AuthenticationError)):
        pika_conn(srv, "cachy", "cachy-pw2", "ta")


# --------------------------------------------------------------------------- loopback mode

def test_loopback_mode_keeps_make_run_simple():
    w = wl.Warren(shards=1, extra_args=["--store", "memory"])
    w.start()
    try:
        s = Server(w)
        # no credentials: X-Project-Id trusted for unregistered projects and default
        h = {"Client-ID": str(uuid.uuid4()), "X-Project-Id": "anything-" + uuid.uuid4().hex[:6]}
        assert requests.put(w.url + "/v2/queues/q", headers=h, timeout=10).status_code == 201
        h["X-Project-Id"] = "default"
        assert requests.put(w.url + "/v2/queues/q", headers=h, timeout=10).status_code == 201
        # a registered tenant is protected even here
        s.ok("tenant", "add", "prot")
        h["X-Project-Id"] = "prot"
        wl.assert_error(requests.put(w.url + "/v2/queues/q", headers=h, timeout=10), 403)
        # an invalid token is refused in this mode too
        h["X-Auth-Token"] = "0" * 64
        wl.assert_error(requests.get(w.url + "/v2/queues", headers=h, timeout=10), 401)
        # guest over AMQP: "/" and unregistered vhosts, not registered ones
        c = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", w.amqp_port,
                                                              connection_attempts=1))
        c.close()
        c = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", w.amqp_port, "free-vh",
                                                              connection_attempts=1))
        c.close()
        with pytest.raises(pika.exceptions.ProbableAccessDeniedError):
            pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", w.amqp_port, "prot",
                                                              connection_attempts=1))
    finally:
        assert w.stop() == 0
        w.cleanup()


def test_memory_store_restart_reuses_admin_token():
    w = wl.Warren(shards=1, extra_args=["--store", "memory"])
    w.start()
    try:
        tok = read_token(w)
        w.stop()
        w.start()
        assert read_token(w) == tok
        r = requests.get(w.url + "/admin/v1/tenants", headers={"X-Auth-Token": tok}, timeout=10)
        assert r.status_code == 200
    finally:
        w.stop()
        w.cleanup()
