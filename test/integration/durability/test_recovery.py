"""Start-up recovery (issue 4, item 4): what a restart on the same data dir
brings back, after a clean stop and after kill -9, and a stop during the
recovery of a big store (item 5); every form a queued message takes in
memory (small or large body, TTL, delay, producer, route, fanout) read back
the same before and after a restart.
"""

import os
import re
import signal
import time

import pika
import pytest

import durlib as dl
import warren as wl

PERSISTENT = pika.BasicProperties(delivery_mode=2)
TRANSIENT = pika.BasicProperties(delivery_mode=1)


@pytest.fixture
def broker():
    w = dl.durable_warren()
    w.start()
    yield w
    w.kill()
    w.cleanup()


def channel(w, confirm=True):
    conn = dl.amqp_connect(w.amqp_port)
    ch = conn.channel()
    if confirm:
        ch.confirm_delivery()
    return conn, ch


def drain(ch, q):
    """basic.get with auto-ack until empty: [(body, redelivered)]."""
    out = []
    while True:
        m, _, body = ch.basic_get(q, auto_ack=True)
        if m is None:
            return out
        out.append((body.decode(), m.redelivered))


def exists(ch_factory, q):
    conn, ch = ch_factory()
    try:
        ch.queue_declare(q, passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker as e:
        assert e.reply_code == 404, e
        return False
    finally:
        if conn.is_open:
            conn.close()


@pytest.mark.parametrize("how", ["sigterm", "kill9"])
def test_queues_bindings_and_persistent_messages_come_back(broker, how):
    w = broker
    conn, ch = channel(w)
    ch.exchange_declare("rx-topic", "topic", durable=True)
    ch.exchange_declare("rx-fanout", "fanout", durable=True)
    ch.exchange_declare("rx-gone", "direct", durable=False)
    ch.queue_declare("rq-durable", durable=True, arguments={"x-max-length": 1000})
    ch.queue_declare("rq-fan", durable=True)
    ch.queue_declare("rq-transient", durable=False)
    ch.queue_bind("rq-durable", "rx-topic", routing_key="a.*")
    ch.queue_bind("rq-fan", "rx-fanout")
    ch.queue_bind("rq-durable", "rx-gone", routing_key="k")
    for i in range(20):
        ch.basic_publish("rx-topic", "a.%d" % i, b"p%d" % i, PERSISTENT)
        ch.basic_publish("rx-topic", "a.%d" % i, b"t%d" % i, TRANSIENT)
        ch.basic_publish("", "rq-transient", b"x%d" % i, PERSISTENT)
    ch.basic_publish("rx-fanout", "", b"fan", PERSISTENT)
    conn.close()
    # REST: a durable queue with metadata and messages of its own.
    api = wl.Api(w.url)
    meta = {"_durable": True, "_default_message_ttl": 1200, "colour": "green"}
    api.create_queue("rest-durable", meta)
    posted = api.post_bodies("rest-durable", [{"n": i} for i in range(5)])

    if how == "sigterm":
        assert w.stop() == 0, w.log_tail()
    else:
        w.kill()
    w.start()

    def new_channel():
        return channel(w, confirm=False)

    conn, ch = new_channel()
    got = drain(ch, "rq-durable")
    assert got == [("p%d" % i, False) for i in range(20)], got
    assert drain(ch, "rq-fan") == [("fan", False)]
    conn.close()
    assert not exists(new_channel, "rq-transient"), "a non-durable queue came back"
    # The bindings of durable exchanges route again; the transient exchange is gone.
    conn, ch = channel(w)
    ch.basic_publish("rx-topic", "a.b", b"after", PERSISTENT, mandatory=True)
    ch.basic_publish("rx-fanout", "", b"after-fan", PERSISTENT, mandatory=True)
    assert drain(ch, "rq-durable") == [("after", False)]
    assert drain(ch, "rq-fan") == [("after-fan", False)]
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.exchange_declare("rx-gone", "direct", passive=True)
    assert e.value.reply_code == 404
    conn.close()
    # The queue argument survived: x-max-length still applies.
    conn, ch = channel(w)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare("rq-durable", durable=True, arguments={"x-max-length": 5})
    assert e.value.reply_code == 406, "x-max-length was not restored: %s" % e.value
    conn.close()

    r = api.get("/v2/queues/rest-durable")
    assert r.status_code == 200, wl.describe(r)
    assert r.json().get("colour") == "green" and r.json().get("_durable") is True, r.json()
    c = api.claim("rest-durable", limit=10)
    assert c.status_code == 201, wl.describe(c)
    assert sorted(m["id"] for m in c.json()["messages"]) == sorted(posted)
    assert sorted(m["body"]["n"] for m in c.json()["messages"]) == list(range(5))


@pytest.mark.parametrize("how", ["sigterm", "kill9"])
def test_delivered_unacked_messages_come_back_redelivered(broker, how):
    w = broker
    conn, ch = channel(w)
    ch.queue_declare("rd", durable=True)
    for i in range(10):
        ch.basic_publish("", "rd", b"m%d" % i, PERSISTENT)
    # m0..m3 by basic.get, m3 acked; m4 and m5 by a consumer (prefetch 2), not acked.
    held = [ch.basic_get("rd", auto_ack=False)[0] for _ in range(4)]
    assert all(m is not None for m in held)
    ch2 = conn.channel()
    ch2.basic_qos(prefetch_count=2)
    got = []
    for m, _, body in ch2.consume("rd", inactivity_timeout=5):
        assert m is not None, "no delivery to the consumer"
        got.append(body)
        if len(got) == 2:
            break
    assert got == [b"m4", b"m5"]
    ch.basic_ack(held[3].delivery_tag)
    # A confirmed write on the same queue after the deliveries: their marks
    # and the ack are in the store by the time it is confirmed.
    ch.basic_publish("", "rd", b"barrier", PERSISTENT)

    if how == "sigterm":
        assert w.stop() == 0, w.log_tail()
    else:
        w.kill()
    w.start()
    conn, ch = channel(w, confirm=False)
    got = drain(ch, "rd")
    want = [("m%d" % i, i in (0, 1, 2, 4, 5)) for i in range(10) if i != 3] + [("barrier", False)]
    assert got == want


def fill(w, q, n, size=100):
    """n persistent messages of `size` bytes, numbered in the body; the last one confirmed."""
    conn, ch = channel(w, confirm=False)
    ch.queue_declare(q, durable=True)
    pad = b"." * size
    for i in range(n - 1):
        ch.basic_publish("", q, (b"%d " % i + pad)[:size], PERSISTENT)
    ch.confirm_delivery()
    ch.basic_publish("", q, (b"%d " % (n - 1) + pad)[:size], PERSISTENT)
    count = ch.queue_declare(q, passive=True).method.message_count
    conn.close()
    return count


def recovered(w):
    """(messages, ms) of the last "recovered ... messages in N ms" line of the log."""
    with open(w.stderr_path, errors="replace") as f:
        found = re.findall(r"recovered \d+ queues and (\d+) messages in (\d+) ms", f.read())
    return tuple(int(x) for x in found[-1]) if found else None


def store_open(w):
    """warrend holds a file of its RocksDB store open (the recovery scan follows)."""
    store = os.path.join(os.path.realpath(w.data_dir), "store") + "/"
    try:
        fds = os.listdir("/proc/%d/fd" % w.proc.pid)
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink("/proc/%d/fd/%s" % (w.proc.pid, fd)).startswith(store):
                return True
        except OSError:
            pass
    return False


def log_has(w, text):
    with open(w.stderr_path, errors="replace") as f:
        return f.read().count(text)


N_BIG = dl.scaled(200000, 40000)


@pytest.mark.slow
def test_a_stop_during_recovery_loses_nothing():
    w = dl.durable_warren(start_timeout=dl.scaled(60.0, 300.0))
    try:
        w.start()
        assert fill(w, "big", N_BIG) == N_BIG
        assert w.stop() == 0, w.log_tail()
        w.start()
        assert recovered(w)[0] >= N_BIG, w.log_tail()
        assert w.stop() == 0

        # SIGTERM, then SIGKILL, while the store is open and being read:
        # after the process opened it and before "recovered" is logged.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for _ in range(5):
                before = log_has(w, "messages in ")
                w.start(wait=False)
                dl.wait_for(lambda: store_open(w), 30, "warrend to open its store")
                during = log_has(w, "messages in ") == before
                w.proc.send_signal(sig)
                rc = w.proc.wait(dl.scaled(30, 120))
                if during:
                    break
            assert during, "could not catch warrend during a recovery"
            if sig == signal.SIGTERM:
                # Honoured once started (the signal waits until then): a clean exit.
                assert rc == 0, "SIGTERM during recovery: exit %r\n%s" % (rc, w.log_tail())
            else:
                assert rc == -signal.SIGKILL

        # A clean start has every message, in order.
        w.start()
        assert recovered(w)[0] >= N_BIG
        conn, ch = channel(w, confirm=False)
        assert ch.queue_declare("big", passive=True).method.message_count == N_BIG
        first = [ch.basic_get("big", auto_ack=True)[2].split(b" ")[0] for _ in range(3)]
        assert first == [b"0", b"1", b"2"]
        conn.close()
        assert w.stop() == 0, w.log_tail()
    finally:
        w.kill()
        w.cleanup()


# --- Every form a message takes in memory, back whole after a restart -------
# The core keeps a small body inside its message's block and adds the TTL,
# delay and producer/route words only to messages that have them
# (core/core_int.h), while a large body, or one routed to several queues,
# stays one shared copy. Each combination is read back with real clients:
# body, properties, exchange and routing key, TTL and expiry (AMQP, pika);
# delay, TTL and the producer's own messages hidden (REST, requests).

SMALL = b"s" * 100
LARGE = bytes(range(256)) * 16  # 4 KiB: never copied into the message


def props(**kw):
    return pika.BasicProperties(delivery_mode=2, content_type="application/x-forms",
                                headers={"form": kw.pop("form")}, **kw)


# (queue, body, exchange, routing key, expiration): one message each
FORMS = [
    ("mf-plain", SMALL, "", "mf-plain", None),
    ("mf-large", LARGE, "", "mf-large", None),
    ("mf-direct", SMALL, "mf-x", "k", None),
    ("mf-ttl", SMALL, "mf-x", "t", "600000"),
    ("mf-large-ttl", LARGE, "", "mf-large-ttl", "600000"),
]
FAN = ["mf-fan-1", "mf-fan-2", "mf-fan-3"]


def publish_all(w):
    conn = dl.amqp_connect(w.amqp_port)
    ch = conn.channel()
    ch.confirm_delivery()
    ch.exchange_declare("mf-x", "direct", durable=True)
    ch.exchange_declare("mf-fan", "fanout", durable=True)
    for q, _, ex, key, _ in FORMS:
        ch.queue_declare(q, durable=True)
        if ex:
            ch.queue_bind(q, ex, routing_key=key)
    for q in FAN:
        ch.queue_declare(q, durable=True)
        ch.queue_bind(q, "mf-fan")
    ch.queue_declare("mf-short", durable=True)
    for q, body, ex, key, exp in FORMS:
        ch.basic_publish(ex, key, body, props(form=q, expiration=exp))
    ch.basic_publish("mf-fan", "any", SMALL, props(form="fan"))
    ch.basic_publish("", "mf-short", SMALL, props(form="short", expiration="300"))
    conn.close()


def check_all(w, redelivered):
    conn = dl.amqp_connect(w.amqp_port)
    ch = conn.channel()
    for q, body, ex, key, exp in FORMS:
        m, p, got = ch.basic_get(q, auto_ack=False)
        assert m is not None, q
        assert got == body, q
        assert (m.exchange, m.routing_key, m.redelivered) == (ex, key, redelivered), q
        assert (p.content_type, p.headers, p.delivery_mode, p.expiration) == \
            ("application/x-forms", {"form": q}, 2, exp), q
        # Held by this channel: still there after the channel goes.
    for q in FAN:
        m, p, got = ch.basic_get(q, auto_ack=False)
        assert m is not None and got == SMALL and p.headers == {"form": "fan"}, q
        assert (m.exchange, m.routing_key) == ("mf-fan", "any"), q
    # The 300 ms message expired (its expiry survived in the message).
    assert ch.basic_get("mf-short", auto_ack=True)[0] is None
    conn.close()


def test_amqp_forms_survive_restart(broker):
    w = broker
    publish_all(w)
    time.sleep(0.6)
    check_all(w, redelivered=False)  # delivered once, then requeued by the close
    assert w.stop() == 0
    w.start()
    check_all(w, redelivered=True)


def test_rest_delay_ttl_producer_survive_restart(broker):
    w = broker
    me = wl.Api(w.url)
    other = wl.Api(w.url, project=me.project)
    # A per-message delay counts only on a queue with a default delay (Zaqar).
    me.create_queue("mf-rest", {"_default_message_delay": 600})
    published = time.monotonic()
    me.post_messages("mf-rest", [
        {"body": {"n": "delayed"}, "ttl": 3600, "delay": 4},
        {"body": {"n": "mine"}, "ttl": 120, "delay": 0},
        {"body": {"n": "large", "pad": "x" * 4000}, "ttl": 600, "delay": 0},
    ])
    other.post_messages("mf-rest", [{"body": {"n": "theirs"}, "ttl": 60, "delay": 0}])

    def listing(**params):
        r = me.get("/v2/queues/mf-rest/messages", params=params)
        assert r.status_code in (200, 204), wl.describe(r)
        return {m["body"]["n"]: m for m in (r.json()["messages"] if r.status_code == 200 else [])}

    def check():
        # echo false hides my own; the delayed one only with include_delayed.
        assert set(listing()) == {"theirs"}
        assert set(listing(echo="true")) == {"mine", "large", "theirs"}
        seen = listing(echo="true", include_delayed="true")
        assert {n: m["ttl"] for n, m in seen.items()} == \
            {"delayed": 3600, "mine": 120, "large": 600, "theirs": 60}
        assert seen["large"]["body"]["pad"] == "x" * 4000

    check()
    assert w.stop() == 0
    w.start()
    me.base = w.url
    check()
    # The delay still counts from the publish: claimable once it passed,
    # not before.
    r = me.claim("mf-rest", limit=10)
    assert r.status_code == 201, wl.describe(r)
    assert {m["body"]["n"] for m in r.json()["messages"]} == {"mine", "large", "theirs"}
    time.sleep(max(0.0, published + 4.5 - time.monotonic()))
    r = me.claim("mf-rest", limit=10)
    assert r.status_code == 201, wl.describe(r)
    assert [m["body"]["n"] for m in r.json()["messages"]] == ["delayed"]
