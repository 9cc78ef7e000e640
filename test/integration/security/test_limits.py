"""Abuse limits (docs/security.md, Limits): what a client sees when it trickles,
idles, floods handshakes, pipelines without reading, or publishes past the
memory high watermark, and that a well-behaved client beside it is served.

Real clients: raw sockets (slow-loris, idle, never-reading REST and AMQP
peers), requests (the well-behaved REST client), pika (AMQP publishers). Each
test starts its own warrend with the flags it needs and stops it by pid.

Timing bounds are generous on purpose: the suite runs on a shared 2-core
machine, often beside another full build and test run.
"""
import os
import sys
import json
import random
import select
import socket
import struct
import subprocess
import threading
import time
import uuid

import pytest
import requests

import warren as wl

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "amqp"))
import rawamqp  # noqa: E402

pika = pytest.importorskip("pika")

# Slack added to every server-side timeout before a test calls it missed:
# the sweep runs once a second, and the machine is shared.
SLACK = 3.0


def start(extra=()):
    return wl.start_or_fail(wl.Warren(extra_args=list(extra)))


def stop(w):
    wl.stop_and_check(w)


@pytest.fixture
def serve():
    """serve(*flags) starts a warrend with those flags; all are stopped at teardown."""
    started = []

    def f(*flags):
        started.append(start(flags))
        return started[-1]
    yield f
    for w in started:
        stop(w)


def poll(cond, timeout, step=0.05):
    """cond() until truthy or timeout; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step)


def raw(port, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    return s


def wait_eof(s, timeout):
    """Seconds until the peer closes s (reading and dropping data), or None."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        r, _, _ = select.select([s], [], [], 0.2)
        if r:
            try:
                if not s.recv(65536):
                    return time.monotonic() - t0
            except (ConnectionResetError, BrokenPipeError):
                return time.monotonic() - t0
    return None


def ping(w):
    r = requests.get(w.url + "/v2/ping", headers=wl.headers("limits-ok"), timeout=10)
    assert r.status_code == 204, wl.describe(r)


def request_bytes(method, path, project="p1", client_id=None, body=b""):
    head = ("%s %s HTTP/1.1\r\nHost: x\r\nX-Project-Id: %s\r\nClient-ID: %s\r\n"
            % (method, path, project, client_id or uuid.uuid4()))
    if body:
        head += "Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
    return head.encode() + b"\r\n" + body


class SlowLoris(threading.Thread):
    """Sends a REST request one byte every `every` seconds until closed or stopped."""

    def __init__(self, port, every=1.0):
        super().__init__(daemon=True)
        self.sock = raw(port)
        self.every = every
        self.stop_ev = threading.Event()
        self.first_byte = None
        self.closed_after = None  # seconds from the first byte to the server's close
        self.sent = 0

    def run(self):
        data = request_bytes("GET", "/v2/ping")
        for i in range(len(data)):
            try:
                self.sock.send(data[i:i + 1])
            except OSError:
                break
            if self.first_byte is None:
                self.first_byte = time.monotonic()
            self.sent += 1
            if self.stop_ev.wait(0) or self._closed_within(self.every):
                break
        self.sock.close()

    def _closed_within(self, t):
        r, _, _ = select.select([self.sock], [], [], t)
        if not r:
            return False
        try:
            d = self.sock.recv(4096)
        except OSError:
            d = b""
        if d:
            return False  # an answer before the request ended would fail below
        self.closed_after = time.monotonic() - self.first_byte
        return True


def test_slow_loris_closed_after_request_timeout(serve):
    server = serve("--http-request-timeout", "2", "--http-idle-timeout", "5")
    loris = SlowLoris(server.http_port, every=1.0)
    loris.start()
    served = 0
    # Meanwhile a normal client keeps getting answers.
    while loris.is_alive() and served < 1000:
        ping(server)
        served += 1
        time.sleep(0.1)
    loris.join(2 + SLACK + 5)
    assert loris.closed_after is not None, \
        "a request trickled a byte a second was not cut off (%d bytes sent)" % loris.sent
    # 2 s from the first byte, plus up to 1 s of sweep; below the 5 s idle timeout
    # (which a byte a second never reaches anyway).
    assert 1.5 <= loris.closed_after <= 2 + 1 + SLACK, loris.closed_after
    assert served >= 5, "the normal client got only %d answers meanwhile" % served


def test_idle_rest_connection_closed(serve):
    server = serve("--http-idle-timeout", "2", "--http-request-timeout", "30")
    # One keep-alive connection that was answered and then says nothing, one
    # that never says anything.
    answered = raw(server.http_port)
    answered.sendall(request_bytes("GET", "/v2/ping"))
    reply = answered.recv(4096)
    assert reply.startswith(b"HTTP/1.1 204"), reply
    silent = raw(server.http_port)
    t0 = time.monotonic()
    got = wait_eof(answered, 2 + SLACK + 2)
    assert got is not None, "an idle keep-alive connection was not closed"
    assert 1.5 <= got <= 2 + SLACK, got
    rest = wait_eof(silent, 2 + SLACK + 2)
    assert rest is not None, "a connection that never sent a byte was not closed"
    assert time.monotonic() - t0 <= 2 + SLACK + 1
    answered.close()
    silent.close()
    ping(server)


def amqp_connect(w, **kw):
    return pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", w.amqp_port, connection_attempts=1, socket_timeout=5, **kw))


def test_max_handshakes(serve):
    server = serve("--max-handshakes", "5")
    # Six connections that never send the protocol header: exactly one of them
    # (the sixth the server accepts, whichever that is) is closed at once.
    socks = [raw(server.amqp_port) for _ in range(6)]
    closed = [s for s in socks if wait_eof(s, 0.5) is not None]
    if not closed:
        closed = [s for s in socks if wait_eof(s, 2.0) is not None]
    assert len(closed) == 1, "%d of 6 connections closed, expected 1" % len(closed)
    # A real client is refused while the five hold their slots.
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        amqp_connect(server)
    for s in socks:
        s.close()

    # Once they are gone, a real client gets in.
    def connects():
        try:
            return amqp_connect(server)
        except pika.exceptions.AMQPConnectionError:
            return None
    c = poll(connects, 5, step=0.1)
    assert c is not None, "pika could not connect after the handshakes were closed"
    ch = c.channel()
    ch.queue_declare("after-handshakes")
    c.close()


def server_side_open(w, client):
    """Whether the server's end of the connection from socket `client` is still
    ESTABLISHED (ss), which a test can ask without reading from it."""
    out = subprocess.run(["ss", "-Htn", "state", "established",
                          "( sport = :%d and dport = :%d )" % (w.http_port, client.getsockname()[1])],
                         capture_output=True, text=True, timeout=10).stdout
    return bool(out.strip())


def read_all(s, timeout=10):
    data = b""
    s.settimeout(timeout)
    while True:
        try:
            d = s.recv(1 << 20)
        except (ConnectionResetError, socket.timeout):
            break
        if not d:
            break
        data += d
    s.close()
    return data


def big_queue(server):
    """A queue whose GET ?limit=10 answers ~200 KiB (ten 20 KiB messages)."""
    api = wl.Api(server.url)
    api.create_queue("big")
    api.post_bodies("big", ["x" * 20000] * 10, ttl=300)
    get = request_bytes("GET", "/v2/queues/big/messages?echo=true&limit=10", api.project,
                        api.client_id)
    return api, get


PIPELINED = 150  # ~30 MB of answers: past OUT_MAX (4 MiB) plus the socket buffers


def test_pipelining_without_reading(serve):
    """A client that pipelines requests and never reads is cut off within the
    idle timeout (its unread output stays bounded meanwhile), and what it was
    sent is 200s, possibly a final 503 JSON, then the close."""
    server = serve("--http-idle-timeout", "3")
    api, get = big_queue(server)
    s = raw(server.http_port, rcvbuf=65536)
    s.sendall(get * PIPELINED)
    t0 = time.monotonic()
    # Another client is unaffected meanwhile.
    for _ in range(5):
        ping(server)
        r = api.get("/v2/queues/big/stats")
        assert r.status_code == 200, wl.describe(r)
    assert poll(lambda: not server_side_open(server, s), 3 + SLACK + 5, step=0.2), \
        "the pipeliner was not cut off"
    took = time.monotonic() - t0
    assert took <= 3 + SLACK + 2, took
    data = read_all(s)
    ok = data.count(b"HTTP/1.1 200")
    answers = data.count(b"HTTP/1.1 ")
    assert 0 < ok < PIPELINED, "%d of %d pipelined requests answered 200" % (ok, PIPELINED)
    i = data.find(b"HTTP/1.1 503")
    if i >= 0:
        head = data[i:].split(b"\r\n\r\n", 1)[0].lower()
        assert b"application/json" in head, data[i:i + 400]
        assert answers == ok + 1, "answers after the 503"
    else:
        assert answers == ok, "an answer other than 200: %r" % data[-400:]
    ping(server)


def read_responses(s, n, timeout=30):
    """The first n HTTP/1.1 responses on s, as (status, body) in order."""
    buf, out = b"", []
    s.settimeout(timeout)
    while len(out) < n:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = buf[:end].decode("latin-1").split("\r\n")
            length = 0
            for line in head[1:]:
                k, _, v = line.partition(":")
                if k.strip().lower() == "content-length":
                    length = int(v)
            if len(buf) >= end + 4 + length:
                out.append((int(head[0].split()[1]), buf[end + 4:end + 4 + length]))
                buf = buf[end + 4 + length:]
                continue
        try:
            d = s.recv(1 << 16)
        except socket.timeout:
            raise AssertionError("no answer after %d of %d: %r" % (len(out), n, out[-3:]))
        assert d, "closed after %d of %d answers" % (len(out), n)
        buf += d
    return out


def test_pipelined_requests_split_anywhere(serve):
    """Pipelined requests (posts through the core, inline answers, reads)
    arriving in pieces cut at random places, lines included, are each
    answered once, in order, and the posted messages keep their order.
    (libevhtp's parser misreads a request line or header line cut by a read;
    frontends/rest/gate.c keeps it from seeing one.)"""
    server = serve()
    api = wl.Api(server.url)
    api.create_queue("pipe")
    reqs, expect = [], []
    for i in range(120):
        body = json.dumps({"messages": [{"body": i, "ttl": 300}]}).encode()
        reqs.append(request_bytes("POST", "/v2/queues/pipe/messages", api.project,
                                  api.client_id, body))
        expect.append(201)
        if i % 3 == 0:
            reqs.append(request_bytes("GET", "/v2/no-such-route-%d" % i, api.project))
            expect.append(404)
        if i % 5 == 0:
            reqs.append(request_bytes("GET", "/v2/queues/pipe/stats", api.project,
                                      api.client_id))
            expect.append(200)
    data = b"".join(reqs)
    rng = random.Random(7)
    s = raw(server.http_port)
    off = 0
    while off < len(data):
        n = rng.randint(1, 300)
        s.sendall(data[off:off + n])
        off += n
        if rng.random() < 0.3:
            time.sleep(0.002)
    got = read_responses(s, len(reqs))
    s.close()
    assert [st for st, _ in got] == expect
    bodies = []
    while True:
        r = api.claim("pipe", limit=20)
        if r.status_code == 204:
            break
        assert r.status_code == 201, wl.describe(r)
        bodies += [m["body"] for m in r.json()["messages"]]
    assert bodies == list(range(120))


def test_half_closed_client_gets_every_answer(serve):
    """A client that sends its requests and then shuts down its sending side
    (printf ... | nc) gets every answer, a long-poll's included, then the
    close. Reading stays on while the core answers, so the end of input
    arrives while a request is still in flight."""
    server = serve()
    api = wl.Api(server.url)
    api.create_queue("half")
    body = json.dumps({"messages": [{"body": "one", "ttl": 300}]}).encode()
    data = (request_bytes("POST", "/v2/queues/half/messages", api.project, api.client_id, body) +
            request_bytes("GET", "/v2/queues/half/stats", api.project, api.client_id) +
            request_bytes("POST", "/v2/queues/half/claims?wait=1", api.project, api.client_id,
                          b'{"ttl": 60, "grace": 60}') +
            request_bytes("POST", "/v2/queues/half/claims?wait=1", api.project, api.client_id,
                          b'{"ttl": 60, "grace": 60}'))
    s = raw(server.http_port)
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    got = read_responses(s, 4)
    assert [st for st, _ in got] == [201, 200, 201, 204]
    assert json.loads(got[2][1])["messages"][0]["body"] == "one"
    assert wait_eof(s, 5) is not None, "not closed after the last answer"
    s.close()
    # A body cut short by the end of input is no request: closed at once.
    s = raw(server.http_port)
    s.sendall(request_bytes("POST", "/v2/queues/half/messages", api.project, api.client_id,
                            body)[:-5])
    s.shutdown(socket.SHUT_WR)
    assert wait_eof(s, 5) is not None, "a half-closed partial request kept the connection"
    s.close()
    ping(server)


def test_idle_timeout_spares_a_long_poll(serve):
    """--http-idle-timeout closes a connection that says nothing, not one
    whose client waits on a long-poll longer than that."""
    server = serve("--http-idle-timeout", "1")
    api = wl.Api(server.url)
    api.create_queue("patient")
    s = raw(server.http_port)
    t0 = time.monotonic()
    s.sendall(request_bytes("POST", "/v2/queues/patient/claims?wait=3", api.project,
                            api.client_id, b'{"ttl": 60, "grace": 60}'))
    got = read_responses(s, 1)
    took = time.monotonic() - t0
    assert got[0][0] == 204, got
    assert took >= 2.5, took
    # Idle again after the answer: closed by the idle timeout.
    assert wait_eof(s, 1 + SLACK) is not None, "the idle connection stayed open"
    s.close()


def test_overlong_lines_get_431(serve):
    """A header line over evhtp's 8 KiB gets a 431 JSON answer; so does a line
    that never ends: the gate (which holds a partial line) lets it through
    past 16 KiB for evhtp to refuse, instead of buffering it for ever."""
    server = serve()
    for data in (b"GET /v2/ping HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 10000 + b"\r\n\r\n",
                 b"GET /v2/" + b"a" * 20000):
        s = raw(server.http_port)
        s.sendall(data)
        got = read_responses(s, 1)
        s.close()
        assert got[0][0] == 431, got
        assert "title" in json.loads(got[0][1]), got
    ping(server)


# --- latency isolation ------------------------------------------------------


def shortstr(s):
    b = s.encode()
    return struct.pack(">B", len(b)) + b


class StuckConsumer:
    """Raw AMQP: handshake, queue.declare, basic.consume no_ack, then never reads."""

    def __init__(self, port, queue):
        self.c = rawamqp.RawConn(port)
        self.c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.c.handshake()
        self.c.open_channel(1)
        self.c.send_method(1, 50, 10, b"\x00\x00" + shortstr(queue) + b"\x00" + b"\x00" * 4)
        self.c.expect_method(50, 11, ch=1)
        self.c.send_method(1, 60, 20, b"\x00\x00" + shortstr(queue) + shortstr("") +
                           b"\x02" + b"\x00" * 4)
        self.c.expect_method(60, 21, ch=1)

    def close(self):
        self.c.close()


LATENCY_P99_S = 0.250


def test_latency_isolation(serve):
    """A well-behaved REST client's round trip (POST one message) p99 over 200
    requests stays under 250 ms while 4 slow-loris REST clients and 4 AMQP
    consumers that never read their socket are connected and messages flow to
    those consumers. 250 ms is generous on purpose (the median is a few ms):
    the machine has 2 shared cores, often busy with another full build and
    test run, and at a load average of 6 the p99 measured ~145 ms. Not under
    ASan: a latency bound says nothing about an instrumented build."""
    if wl.is_asan(wl.warren_bin()):
        pytest.skip("latency bound: meaningless under ASan (runs in the release suite)")
    server = serve()
    lorises = [SlowLoris(server.http_port, every=0.5) for _ in range(4)]
    for t in lorises:
        t.start()
    stuck = [StuckConsumer(server.amqp_port, "stuck%d" % i) for i in range(4)]
    stop_ev = threading.Event()
    published = [0]
    errors = []

    def publish():
        try:
            c = amqp_connect(server)
            ch = c.channel()
            body = b"y" * 4096
            while not stop_ev.is_set():
                for i in range(4):
                    ch.basic_publish("", "stuck%d" % i, body)
                published[0] += 4
                if published[0] % 400 == 0:
                    c.process_data_events(0)
            c.close()
        except Exception as e:  # noqa: BLE001 - reported by the test
            errors.append(e)
    pub = threading.Thread(target=publish, daemon=True)
    pub.start()
    try:
        # Messages flow: enough for the stuck consumers' buffers to fill up.
        assert poll(lambda: published[0] >= 2000 or errors, 20), "publisher too slow"
        assert not errors, errors
        api = wl.Api(server.url)
        api.create_queue("fast")
        times = []
        for i in range(200):
            t0 = time.monotonic()
            r = api.post("/v2/queues/fast/messages", json={"messages": [{"body": i}]})
            times.append(time.monotonic() - t0)
            assert r.status_code == 201, wl.describe(r)
        assert not errors, errors
        assert all(t.is_alive() for t in lorises), "a slow-loris was cut off early"
    finally:
        stop_ev.set()
        pub.join(10)
        for t in lorises:
            t.stop_ev.set()
        for s in stuck:
            s.close()
    times.sort()
    p99 = times[int(len(times) * 0.99) - 1]
    assert p99 < LATENCY_P99_S, "p99 %.1f ms (median %.1f ms, max %.1f ms)" % (
        p99 * 1000, times[len(times) // 2] * 1000, times[-1] * 1000)
    print("latency isolation: p50 %.2f ms p99 %.2f ms max %.2f ms, %d published" % (
        times[len(times) // 2] * 1000, p99 * 1000, times[-1] * 1000, published[0]))


# --- memory high watermark --------------------------------------------------

WATERMARK = 150 * 1024 * 1024
# RSS may pass the mark by what is read before the next check (every 200 ms):
# the publishers' input buffers and the batch in flight.
RSS_MARGIN = 60 * 1024 * 1024


class Publisher(threading.Thread):
    """pika publisher of 10 KiB bodies to `queue` until stopped."""

    def __init__(self, w, queue):
        super().__init__(daemon=True)
        self.conn = amqp_connect(w, blocked_connection_timeout=None)
        self.conn.add_on_connection_blocked_callback(lambda *a: self.events.append("blocked"))
        self.conn.add_on_connection_unblocked_callback(lambda *a: self.events.append("unblocked"))
        self.ch = self.conn.channel()
        self.ch.queue_declare(queue)
        self.queue = queue
        self.events = []
        self.count = 0
        self.last = time.monotonic()
        self.stop_ev = threading.Event()
        self.error = None

    def run(self):
        body = b"z" * 10240
        try:
            while not self.stop_ev.is_set():
                self.ch.basic_publish("", self.queue, body)
                self.count += 1
                self.last = time.monotonic()
                if self.count % 200 == 0:
                    self.conn.process_data_events(0)
            self.conn.close()
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e

    def stalled(self, for_s):
        return time.monotonic() - self.last >= for_s


def test_memory_high_watermark(serve):
    # ASan quarantines freed memory, so RSS never falls back under the mark
    # and publishers rightly stay blocked: the release suite runs this.
    if wl.is_asan(wl.warren_bin()):
        pytest.skip("RSS watermark: ASan's quarantine keeps RSS high (runs in the release suite)")
    server = serve("--memory-high-watermark", str(WATERMARK), "--store", "memory")
    asan = wl.is_asan(server.binary)
    pid = server.proc.pid
    api = wl.Api(server.url)
    api.create_queue("rest-side")
    pubs = [Publisher(server, "flood") for _ in range(2)]
    for p in pubs:
        p.start()
    peak = [0]

    def blocked():
        peak[0] = max(peak[0], wl.rss(pid))
        assert not any(p.error for p in pubs), [p.error for p in pubs]
        return all(p.stalled(1.0) or "blocked" in p.events for p in pubs)
    try:
        assert poll(blocked, 60, step=0.1), "publishers not blocked; RSS %d MB, %s" % (
            wl.rss(pid) >> 20, [(p.count, p.events) for p in pubs])
        # REST posts are refused while memory is high.
        r = api.post("/v2/queues/rest-side/messages", json={"messages": [{"body": 1}]})
        assert r.status_code == 503, wl.describe(r)
        assert "json" in r.headers.get("Content-Type", ""), wl.describe(r)
        assert r.json().get("title"), wl.describe(r)
        assert r.headers.get("Retry-After", "").isdigit(), r.headers
        # And RSS stays bounded while the publishers keep trying.
        t_end = time.monotonic() + 1.0
        while time.monotonic() < t_end:
            peak[0] = max(peak[0], wl.rss(pid))
            time.sleep(0.05)
        counts = [p.count for p in pubs]
        if not asan:
            assert peak[0] <= WATERMARK + RSS_MARGIN, "RSS peaked at %d MB (mark %d MB)" % (
                peak[0] >> 20, WATERMARK >> 20)

        # Drain: a connection that never published is not blocked, and purges.
        c = amqp_connect(server)
        purged = c.channel().queue_purge("flood").method.message_count
        c.close()
        assert purged > 0
        t0 = time.monotonic()
        assert poll(lambda: all(p.count > n + 50 for p, n in zip(pubs, counts)), 15, step=0.1), \
            "publishing did not resume after the purge; RSS %d MB, %s" % (
                wl.rss(pid) >> 20, [(p.count, p.events) for p in pubs])
        resumed = time.monotonic() - t0
        for p in pubs:
            if "blocked" in p.events:
                assert poll(lambda: "unblocked" in p.events, 5), p.events
    finally:
        for p in pubs:
            p.stop_ev.set()
    c = amqp_connect(server)
    c.channel().queue_purge("flood")
    c.close()
    for p in pubs:
        p.join(15)
        assert p.error is None, p.error
    assert poll(lambda: api.post("/v2/queues/rest-side/messages",
                                 json={"messages": [{"body": 2}]}).status_code == 201, 10)
    print("memory watermark: peak RSS %d MB (mark %d MB), resumed %.1f s after the purge, "
          "events %s" % (peak[0] >> 20, WATERMARK >> 20, resumed, [p.events for p in pubs]))
