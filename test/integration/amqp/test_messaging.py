"""AMQP 0-9-1 messaging with real clients: exchanges, queues, publish, consume, get,
acknowledgements, confirms, returns, transactions, queue arguments, properties, every
reply code a client can provoke, kombu, aio-pika, amqp-tools, and REST <-> AMQP.

Each test uses fresh queue and exchange names (uuid), so tests sharing the module's
warrend never see each other's state. A test that needs a core feature that is not
there yet is xfail(strict=True) with the reason: it turns into a failure the day the
feature lands, so it gets switched on.
"""

import asyncio
import base64
import datetime
import decimal
import json
import shutil
import socket
import struct
import subprocess
import time
import uuid

import pytest
import requests

from pikalib import get_body, params, uid
from rawamqp import FRAME_BODY, FRAME_HEADER, FRAME_METHOD, RawConn, shortstr, table

pika = pytest.importorskip("pika")
amqp = pytest.importorskip("amqp")


def closed_with(excinfo, code):
    assert excinfo.value.reply_code == code, excinfo.value


def consume_n(ch, q, n, timeout=5.0, auto_ack=True, **kw):
    got = []
    for m, p, b in ch.consume(q, auto_ack=auto_ack, inactivity_timeout=timeout, **kw):
        if m is None:
            break
        got.append((m, p, b))
        if len(got) == n:
            break
    ch.cancel()
    return got


# ----------------------------------------------------------------------- basics

def test_declare_publish_get_ack(ch):
    q = uid()
    ok = ch.queue_declare(q)
    assert ok.method.queue == q
    assert ok.method.message_count == 0
    ch.basic_publish("", q, b"hello")
    m, p, b = get_body(ch, q, auto_ack=False)
    assert b == b"hello"
    assert m.routing_key == q and m.exchange == "" and not m.redelivered
    ch.basic_ack(m.delivery_tag)
    assert ch.basic_get(q)[0] is None
    assert ch.queue_declare(q, passive=True).method.message_count == 0
    ch.basic_publish("", q, b"1")
    ch.basic_publish("", q, b"2")
    m, _, b = get_body(ch, q)
    assert b == b"1" and m.message_count == 1  # messages left after this one


def test_server_named_queue(ch):
    ok = ch.queue_declare("", exclusive=True)
    name = ok.method.queue
    assert name.startswith("amq.gen-") and len(name) > len("amq.gen-") + 16
    ch.basic_publish("", name, b"x")
    assert get_body(ch, name)[2] == b"x"


def test_declare_ok_counts(ch):
    q = uid()
    ch.queue_declare(q)
    for i in range(5):
        ch.basic_publish("", q, b"%d" % i)
    deadline = time.monotonic() + 3
    while ch.queue_declare(q, passive=True).method.message_count < 5:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    ch.basic_consume(q, lambda *a: None)
    ok = ch.queue_declare(q, passive=True)
    assert ok.method.consumer_count == 1


def test_consume_ack_order(ch):
    q = uid()
    ch.queue_declare(q)
    for i in range(100):
        ch.basic_publish("", q, b"m%d" % i)
    got = consume_n(ch, q, 100, auto_ack=False)
    assert [b for _, _, b in got] == [b"m%d" % i for i in range(100)]
    tags = [m.delivery_tag for m, _, _ in got]
    assert tags == list(range(tags[0], tags[0] + 100))
    ch.basic_ack(tags[-1], multiple=True)
    assert ch.basic_get(q)[0] is None


def test_nack_requeue_redelivered(ch):
    q = uid()
    ch.queue_declare(q)
    ch.basic_publish("", q, b"again")
    m, _, b = get_body(ch, q, auto_ack=False)
    assert not m.redelivered
    ch.basic_nack(m.delivery_tag, requeue=True)
    m2, _, b2 = get_body(ch, q, auto_ack=False)
    assert b2 == b"again" and m2.redelivered
    ch.basic_reject(m2.delivery_tag, requeue=False)
    assert ch.basic_get(q)[0] is None


def test_reject_requeue_then_consume(ch):
    q = uid()
    ch.queue_declare(q)
    ch.basic_publish("", q, b"r")
    m, _, _ = get_body(ch, q, auto_ack=False)
    ch.basic_reject(m.delivery_tag, requeue=True)
    got = consume_n(ch, q, 1)
    assert got[0][2] == b"r" and got[0][0].redelivered


def test_unacked_return_on_channel_close(conn):
    q = uid()
    c1 = conn.channel()
    c1.queue_declare(q)
    c1.basic_publish("", q, b"keep")
    m, _, _ = get_body(c1, q, auto_ack=False)
    assert m is not None
    c1.close()
    c2 = conn.channel()
    m2, _, b = get_body(c2, q)
    assert b == b"keep" and m2.redelivered


def test_unacked_return_on_connection_close(amqp_port):
    q = uid()
    c1 = pika.BlockingConnection(params(amqp_port))
    ch1 = c1.channel()
    ch1.queue_declare(q)
    for i in range(3):
        ch1.basic_publish("", q, b"%d" % i)
    got = consume_n(ch1, q, 3, auto_ack=False)
    assert len(got) == 3
    c1.close()
    c2 = pika.BlockingConnection(params(amqp_port))
    try:
        got2 = consume_n(c2.channel(), q, 3)
        assert sorted(b for _, _, b in got2) == [b"0", b"1", b"2"]
        assert all(m.redelivered for m, _, _ in got2)
    finally:
        c2.close()


def test_recover_requeue(ch):
    q = uid()
    ch.queue_declare(q)
    ch.basic_publish("", q, b"rec")
    m, _, _ = get_body(ch, q, auto_ack=False)
    ch.basic_recover(requeue=True)
    m2, _, b = get_body(ch, q, auto_ack=False)
    assert b == b"rec" and m2.redelivered
    ch.basic_ack(m2.delivery_tag)


def test_prefetch_limits_unacked(ch):
    q = uid()
    ch.queue_declare(q)
    for i in range(10):
        ch.basic_publish("", q, b"%d" % i)
    ch.basic_qos(prefetch_count=3)
    got = []
    ch.basic_consume(q, lambda c, m, p, b: got.append(m))
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        ch.connection.process_data_events(time_limit=0.1)
    assert len(got) == 3
    ch.basic_ack(got[-1].delivery_tag, multiple=True)
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        ch.connection.process_data_events(time_limit=0.1)
    assert len(got) == 6


def test_global_qos_per_channel(ch):
    q1, q2 = uid(), uid()
    for q in (q1, q2):
        ch.queue_declare(q)
        for i in range(5):
            ch.basic_publish("", q, b"%d" % i)
    ch.basic_qos(prefetch_count=4, global_qos=True)
    got = []
    ch.basic_consume(q1, lambda c, m, p, b: got.append(m))
    ch.basic_consume(q2, lambda c, m, p, b: got.append(m))
    # Up to 4 arrive (however slow the machine), then no fifth while nothing is acked.
    deadline = time.monotonic() + 10
    while len(got) < 4 and time.monotonic() < deadline:
        ch.connection.process_data_events(time_limit=0.1)
    ch.connection.process_data_events(time_limit=0.5)
    assert len(got) == 4


def test_cancel_and_server_cancel_on_delete(conn):
    ch = conn.channel()
    q = uid()
    ch.queue_declare(q)
    cancelled = []
    ch.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.consumer_tag))
    tag = ch.basic_consume(q, lambda *a: None)
    other = conn.channel()
    other.queue_delete(q)
    deadline = time.monotonic() + 20
    while not cancelled and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.1)
    assert cancelled == [tag]


def test_consumer_tags(amqp_port):
    # pika names its consumers itself; py-amqp lets the server do it.
    q = uid()
    c = amqp.Connection(host="127.0.0.1:%d" % amqp_port, connect_timeout=5)
    c.connect()
    try:
        ch = c.channel()
        ch.queue_declare(q)
        t1 = ch.basic_consume(q, consumer_tag="", callback=lambda m: None)
        assert t1.startswith("amq.ctag-") and len(t1) > len("amq.ctag-") + 16
        t2 = ch.basic_consume(q, consumer_tag="mine", callback=lambda m: None)
        assert t2 == "mine"
        ch.basic_cancel(t1)
        ch.basic_cancel(t2)
    finally:
        c.close()


def test_pipelined_publishes_keep_order(ch):
    q = uid()
    ch.queue_declare(q)
    n = 5000
    for i in range(n):
        ch.basic_publish("", q, b"%06d" % i)
    got = consume_n(ch, q, n)
    assert [b for _, _, b in got] == [b"%06d" % i for i in range(n)]


def test_priority_queue(ch):
    q = uid()
    ch.queue_declare(q, arguments={"x-max-priority": 10})
    for prio in (1, 5, 9, 5, 1):
        ch.basic_publish("", q, b"p%d" % prio, pika.BasicProperties(priority=prio))
    time.sleep(0.2)
    got = [get_body(ch, q)[2] for _ in range(5)]
    assert got == [b"p9", b"p5", b"p5", b"p1", b"p1"]


# ------------------------------------------------------------ confirms, returns

def test_consumer_priorities(conn):
    """x-priority on basic.consume: the higher-priority consumer gets every
    message while it has prefetch room; the lower one gets the overflow."""
    ch = conn.channel()
    q = uid()
    ch.queue_declare(q)
    ch.basic_qos(prefetch_count=5)
    high, low = [], []
    ch.basic_consume(q, lambda c, m, p, b: high.append(m.delivery_tag),
                     arguments={"x-priority": 10})
    ch.basic_consume(q, lambda c, m, p, b: low.append(m.delivery_tag),
                     arguments={"x-priority": 1})
    pub = conn.channel()
    for i in range(4):
        pub.basic_publish("", q, b"p%d" % i)
    deadline = time.monotonic() + 5
    while len(high) < 4 and time.monotonic() < deadline:
        conn.process_data_events(0.05)
    assert len(high) == 4 and low == [], (high, low)
    # high is now at 4 of 5 unacked: one more fits, the rest overflow to low.
    for i in range(4):
        pub.basic_publish("", q, b"o%d" % i)
    deadline = time.monotonic() + 5
    while len(high) + len(low) < 8 and time.monotonic() < deadline:
        conn.process_data_events(0.05)
    assert len(high) == 5 and len(low) == 3, (high, low)


def test_consumer_priority_bad_type(conn):
    ch = conn.channel()
    q = uid()
    ch.queue_declare(q)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.basic_consume(q, lambda *a: None, arguments={"x-priority": "high"})
    closed_with(e, 406)
    assert "x-priority" in e.value.reply_text


def test_publisher_confirms(ch):
    q = uid()
    ch.queue_declare(q)
    ch.confirm_delivery()
    for i in range(200):
        ch.basic_publish("", q, b"c%d" % i)  # raises if nacked
    assert ch.queue_declare(q, passive=True).method.message_count == 200


def test_confirms_raw_multiple(amqp_port):
    """Pipelined publishes in confirm mode are confirmed in order, coalesced."""
    q = uid()
    with RawConn(amqp_port) as c:
        c.handshake()
        c.open_channel(1)
        c.send_method(1, 50, 10, struct.pack(">H", 0) + shortstr(q) + b"\x00" + table())
        c.expect_method(50, 11, ch=1)
        c.send_method(1, 85, 10, b"\x00")  # confirm.select
        c.expect_method(85, 11, ch=1)
        data = b""
        for i in range(50):
            data += publish_frames(1, "", q, b"body%d" % i)
        c.send(data)
        acked = 0
        while acked < 50:
            args = c.expect_method(60, 80, ch=1)  # basic.ack
            tag, multiple = struct.unpack(">QB", args[:9])
            assert tag > acked
            if tag > acked + 1:
                assert multiple == 1
            acked = tag
        assert acked == 50


def test_mandatory_return_with_properties(ch):
    ex = uid("ex")
    ch.exchange_declare(ex, "direct")
    returned = []
    ch.add_on_return_callback(lambda c, m, p, b: returned.append((m, p, b)))
    props = pika.BasicProperties(content_type="text/x", headers={"k": "v"}, message_id="id1")
    ch.basic_publish(ex, "nowhere", b"lost", props, mandatory=True)
    deadline = time.monotonic() + 3
    while not returned and time.monotonic() < deadline:
        ch.connection.process_data_events(time_limit=0.1)
    m, p, b = returned[0]
    assert m.reply_code == 312 and m.exchange == ex and m.routing_key == "nowhere"
    assert b == b"lost"
    assert p.content_type == "text/x" and p.headers == {"k": "v"} and p.message_id == "id1"


def test_mandatory_with_confirms_raises_unroutable(ch):
    ch.confirm_delivery()
    with pytest.raises(pika.exceptions.UnroutableError):
        ch.basic_publish("amq.direct", uid(), b"x", mandatory=True)


def test_reject_publish_overflow_nacks(ch):
    q = uid()
    ch.queue_declare(q, arguments={"x-max-length": 2, "x-overflow": "reject-publish"})
    ch.confirm_delivery()
    ch.basic_publish("", q, b"1")
    ch.basic_publish("", q, b"2")
    with pytest.raises(pika.exceptions.NackError):
        ch.basic_publish("", q, b"3")


# ------------------------------------------------------------------ transactions

def test_tx_commit_and_rollback(ch):
    q = uid()
    ch.queue_declare(q)
    ch.tx_select()
    ch.basic_publish("", q, b"rolled back")
    ch.tx_rollback()
    ch.basic_publish("", q, b"committed")
    time.sleep(0.1)
    assert ch.queue_declare(q, passive=True).method.message_count == 0
    ch.tx_commit()
    assert ch.queue_declare(q, passive=True).method.message_count == 1
    m, _, b = ch.basic_get(q)
    assert b == b"committed"
    ch.basic_ack(m.delivery_tag)
    ch.tx_commit()
    assert ch.queue_declare(q, passive=True).method.message_count == 0


# --------------------------------------------------------------------- exchanges

def test_direct_exchange(ch):
    ex, q1, q2 = uid("ex"), uid(), uid()
    ch.exchange_declare(ex, "direct", durable=True)
    ch.exchange_declare(ex, "direct", durable=True)  # equivalent: fine
    for q, k in ((q1, "a"), (q2, "b")):
        ch.queue_declare(q)
        ch.queue_bind(q, ex, k)
    ch.basic_publish(ex, "a", b"to a")
    ch.basic_publish(ex, "b", b"to b")
    assert get_body(ch, q1)[2] == b"to a"
    assert get_body(ch, q2)[2] == b"to b"
    ch.queue_unbind(q1, ex, "a")
    ch.basic_publish(ex, "a", b"gone")
    time.sleep(0.1)
    assert ch.basic_get(q1)[0] is None


def test_fanout_exchange(ch):
    ex = uid("ex")
    ch.exchange_declare(ex, "fanout")
    qs = [uid() for _ in range(3)]
    for q in qs:
        ch.queue_declare(q)
        ch.queue_bind(q, ex)
    ch.basic_publish(ex, "ignored", b"all")
    for q in qs:
        assert get_body(ch, q)[2] == b"all"


def test_topic_exchange_wildcards(ch):
    ex = uid("ex")
    ch.exchange_declare(ex, "topic")
    binds = {"star": "a.*.c", "hash": "a.#", "exact": "a.b.c", "hashmid": "#.c"}
    qs = {}
    for name, key in binds.items():
        q = uid(name)
        qs[name] = q
        ch.queue_declare(q)
        ch.queue_bind(q, ex, key)
    ch.basic_publish(ex, "a.b.c", b"abc")
    ch.basic_publish(ex, "a", b"a")
    ch.basic_publish(ex, "a.x.y.c", b"axyc")
    time.sleep(0.2)

    def drain(q):
        out = []
        while True:
            m, _, b = ch.basic_get(q, auto_ack=True)
            if m is None:
                return out
            out.append(b)
    assert drain(qs["star"]) == [b"abc"]
    assert drain(qs["hash"]) == [b"abc", b"a", b"axyc"]
    assert drain(qs["exact"]) == [b"abc"]
    assert drain(qs["hashmid"]) == [b"abc", b"axyc"]


def test_headers_exchange(ch):
    ex, qall, qany = uid("ex"), uid("all"), uid("any")
    ch.exchange_declare(ex, "headers")
    ch.queue_declare(qall)
    ch.queue_declare(qany)
    ch.queue_bind(qall, ex, arguments={"x-match": "all", "a": 1, "b": "two"})
    ch.queue_bind(qany, ex, arguments={"x-match": "any", "a": 1, "b": "two"})
    ch.basic_publish(ex, "", b"both", pika.BasicProperties(headers={"a": 1, "b": "two"}))
    ch.basic_publish(ex, "", b"one", pika.BasicProperties(headers={"a": 1, "b": "x"}))
    ch.basic_publish(ex, "", b"none", pika.BasicProperties(headers={"c": 1}))
    time.sleep(0.2)
    assert get_body(ch, qall)[2] == b"both"
    assert ch.basic_get(qall)[0] is None
    assert get_body(ch, qany)[2] == b"both"
    assert get_body(ch, qany)[2] == b"one"
    assert ch.basic_get(qany)[0] is None


def test_exchange_to_exchange(ch):
    src, dst, q = uid("src"), uid("dst"), uid()
    ch.exchange_declare(src, "topic")
    ch.exchange_declare(dst, "fanout")
    ch.exchange_bind(dst, src, "x.#")
    ch.queue_declare(q)
    ch.queue_bind(q, dst)
    ch.basic_publish(src, "x.y", b"e2e")
    ch.basic_publish(src, "z", b"no")
    assert get_body(ch, q)[2] == b"e2e"
    time.sleep(0.1)
    assert ch.basic_get(q)[0] is None
    ch.exchange_unbind(dst, src, "x.#")
    ch.basic_publish(src, "x.y", b"after")
    time.sleep(0.1)
    assert ch.basic_get(q)[0] is None


def test_exchange_delete_and_internal(conn):
    ch = conn.channel()
    ex = uid("ex")
    ch.exchange_declare(ex, "fanout", internal=True)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.confirm_delivery()
        ch.basic_publish(ex, "", b"x")
    closed_with(ei, 403)
    ch = conn.channel()
    ch.exchange_delete(ex)
    ch.exchange_delete(ex)  # missing: still delete-ok (RabbitMQ)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.exchange_declare(ex, passive=True)
    closed_with(ei, 404)


def test_exchange_delete_if_unused(conn):
    ch = conn.channel()
    ex, q = uid("ex"), uid()
    ch.exchange_declare(ex, "direct")
    ch.queue_declare(q)
    ch.queue_bind(q, ex, "k")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.exchange_delete(ex, if_unused=True)
    closed_with(ei, 406)


def test_last_declared_queue_shortcut(amqp_port):
    c = amqp.Connection(host="127.0.0.1:%d" % amqp_port, connect_timeout=5)
    c.connect()
    try:
        ch = c.channel()
        q, _, _ = ch.queue_declare("", exclusive=True)
        ch.queue_bind("", "amq.direct", "")  # "" = last declared, key = its name
        ch.basic_publish(amqp.Message("sc"), "amq.direct", q)
        time.sleep(0.1)
        m = ch.basic_get("")
        assert m is not None and m.body in ("sc", b"sc")
    finally:
        c.close()


# ------------------------------------------------------------- queue arguments

def test_message_ttl_argument(ch):
    q = uid()
    ch.queue_declare(q, arguments={"x-message-ttl": 100})
    ch.basic_publish("", q, b"short")
    time.sleep(0.4)
    assert ch.basic_get(q)[0] is None


def test_per_message_expiration(ch):
    q = uid()
    ch.queue_declare(q)
    ch.basic_publish("", q, b"gone", pika.BasicProperties(expiration="100"))
    ch.basic_publish("", q, b"stays", pika.BasicProperties(expiration="60000"))
    time.sleep(0.4)
    m, p, b = get_body(ch, q)
    assert b == b"stays" and p.expiration == "60000"
    assert ch.basic_get(q)[0] is None


def test_dead_letter_max_length(ch):
    dlx, dlq, q = uid("dlx"), uid("dlq"), uid()
    ch.exchange_declare(dlx, "fanout")
    ch.queue_declare(dlq)
    ch.queue_bind(dlq, dlx)
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": dlx, "x-max-length": 1})
    ch.basic_publish("", q, b"first")
    ch.basic_publish("", q, b"second")  # drops the head: dead-lettered
    assert get_body(ch, dlq, timeout=5)[2] == b"first"
    assert get_body(ch, q)[2] == b"second"


def test_max_length_drops_head(ch):
    q = uid()
    ch.queue_declare(q, arguments={"x-max-length": 2})
    for i in range(5):
        ch.basic_publish("", q, b"%d" % i)
    time.sleep(0.2)
    assert [get_body(ch, q)[2] for _ in range(2)] == [b"3", b"4"]


def test_max_length_bytes(ch):
    q = uid()
    ch.queue_declare(q, arguments={"x-max-length-bytes": 10})
    for i in range(5):
        ch.basic_publish("", q, b"12345")
    time.sleep(0.2)
    assert ch.queue_declare(q, passive=True).method.message_count == 2


def test_queue_expires(conn):
    ch = conn.channel()
    q = uid()
    ch.queue_declare(q, arguments={"x-expires": 200})
    time.sleep(1.5)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, passive=True)
    closed_with(ei, 404)


def test_dead_letter_on_reject(ch):
    dlx, dlq, q = uid("dlx"), uid("dlq"), uid()
    ch.exchange_declare(dlx, "fanout")
    ch.queue_declare(dlq)
    ch.queue_bind(dlq, dlx)
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": dlx})
    ch.basic_publish("", q, b"dead")
    m, _, _ = get_body(ch, q, auto_ack=False)
    ch.basic_reject(m.delivery_tag, requeue=False)
    assert get_body(ch, dlq)[2] == b"dead"


def test_dead_letter_on_expiry(ch):
    dlx, dlq, q = uid("dlx"), uid("dlq"), uid()
    ch.exchange_declare(dlx, "direct")
    ch.queue_declare(dlq)
    ch.queue_bind(dlq, dlx, "dead-key")
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": dlx,
                                   "x-dead-letter-routing-key": "dead-key",
                                   "x-message-ttl": 50})
    ch.basic_publish("", q, b"expired")
    assert get_body(ch, dlq, timeout=5)[2] == b"expired"


def test_dead_letter_x_death(ch):
    dlx, dlq, q = uid("dlx"), uid("dlq"), uid()
    ch.exchange_declare(dlx, "fanout")
    ch.queue_declare(dlq)
    ch.queue_bind(dlq, dlx)
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": dlx})
    ch.basic_publish("amq.direct", "nothing", b"")  # (amq.direct exists)
    ch.queue_bind(q, "amq.direct", "rk-" + q)
    ch.basic_publish("amq.direct", "rk-" + q, b"dead",
                     pika.BasicProperties(expiration="60000", headers={"mine": 1}))
    m, _, _ = get_body(ch, q, auto_ack=False)
    ch.basic_reject(m.delivery_tag, requeue=False)
    m, p, b = get_body(ch, dlq, timeout=5)
    assert b == b"dead"
    assert p.expiration is None
    assert p.headers["mine"] == 1
    death = p.headers["x-death"][0]
    assert death["queue"] == q and death["reason"] == "rejected" and death["count"] == 1
    assert death["exchange"] == "amq.direct" and death["routing-keys"] == ["rk-" + q]
    assert death["original-expiration"] == "60000"
    assert p.headers["x-first-death-reason"] == "rejected"
    assert p.headers["x-first-death-queue"] == q


def test_exclusive_queue(amqp_port):
    q = uid()
    c1 = pika.BlockingConnection(params(amqp_port))
    c2 = pika.BlockingConnection(params(amqp_port))
    try:
        c1.channel().queue_declare(q, exclusive=True)
        ch2 = c2.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
            ch2.queue_declare(q, passive=True)
        closed_with(ei, 405)
        ch2 = c2.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
            ch2.basic_consume(q, lambda *a: None)
        closed_with(ei, 405)
        c1.close()
        ch2 = c2.channel()
        deadline = time.monotonic() + 3
        while True:  # deleted when its connection closes
            try:
                ch2.queue_declare(q, passive=True)
            except pika.exceptions.ChannelClosedByBroker as e:
                assert e.reply_code == 404
                break
            assert time.monotonic() < deadline
            time.sleep(0.05)
            ch2 = c2.channel()
    finally:
        for c in (c1, c2):
            if c.is_open:
                c.close()


def test_auto_delete_queue(conn):
    ch = conn.channel()
    q = uid()
    ch.queue_declare(q, auto_delete=True)
    tag = ch.basic_consume(q, lambda *a: None)
    ch.basic_cancel(tag)
    deadline = time.monotonic() + 3
    while True:
        try:
            ch.queue_declare(q, passive=True)
        except pika.exceptions.ChannelClosedByBroker as e:
            assert e.reply_code == 404
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_purge_and_delete_counts(ch):
    q = uid()
    ch.queue_declare(q)
    for i in range(4):
        ch.basic_publish("", q, b"%d" % i)
    time.sleep(0.1)
    assert ch.queue_purge(q).method.message_count == 4
    ch.basic_publish("", q, b"x")
    time.sleep(0.1)
    assert ch.queue_delete(q).method.message_count == 1
    assert ch.queue_delete(q).method.message_count == 0  # idempotent


# ---------------------------------------------------------------- properties

ALL_PROPS = dict(
    content_type="application/x-test",
    content_encoding="gzip",
    headers={
        "str": "text",
        "int": 42,
        "neg": -7,
        "big": 2 ** 40,
        "bool": True,
        "none": None,
        "bytes": b"\x00\xff",
        "dec": decimal.Decimal("3.14"),
        "ts": datetime.datetime(2024, 1, 2, 3, 4, 5),
        "list": [1, "two", [3, {"four": 4}]],
        "nested": {"a": {"b": {"c": [1, 2, 3]}}},
    },
    delivery_mode=2,
    priority=3,
    correlation_id="corr",
    reply_to="reply.q",
    expiration="60000",
    message_id="mid",
    timestamp=1700000000,
    type="t",
    user_id="guest",
    app_id="app",
    cluster_id="cl",
)


def test_properties_round_trip(ch):
    q = uid()
    ch.queue_declare(q)
    props = pika.BasicProperties(**ALL_PROPS)
    ch.basic_publish("", q, b"props", props)
    m, p, b = get_body(ch, q)
    assert b == b"props"
    for k, v in ALL_PROPS.items():
        assert getattr(p, k) == v, k


def publish_frames(chan, exchange, key, body, props=b"\x00\x00"):
    """basic.publish + content header (props: flags and fields as encoded) + body."""
    m = struct.pack(">HHH", 60, 40, 0) + shortstr(exchange) + shortstr(key) + b"\x00"
    hdr = struct.pack(">HHQ", 60, 0, len(body)) + props
    out = struct.pack(">BHI", FRAME_METHOD, chan, len(m)) + m + b"\xce"
    out += struct.pack(">BHI", FRAME_HEADER, chan, len(hdr)) + hdr + b"\xce"
    if body:
        out += struct.pack(">BHI", FRAME_BODY, chan, len(body)) + body + b"\xce"
    return out


def test_properties_byte_exact(amqp_port):
    """The content header a consumer gets carries the publisher's property bytes."""
    # Built by pika's own encoder: flags + every field, nested tables and arrays,
    # a decimal, a timestamp (the bytes a real client sends).
    props = pika.BasicProperties(**ALL_PROPS)
    enc = b"".join(props.encode())
    hdr_props = enc[12:] if enc[:2] == b"\x00\x3c" else enc
    q = uid()
    with RawConn(amqp_port) as c:
        c.handshake()
        c.open_channel(1)
        c.send_method(1, 50, 10, struct.pack(">H", 0) + shortstr(q) + b"\x00" + table())
        c.expect_method(50, 11, ch=1)
        c.send(publish_frames(1, "", q, b"exact", hdr_props))
        time.sleep(0.1)
        c.send_method(1, 60, 70, struct.pack(">H", 0) + shortstr(q) + b"\x01")  # get no-ack
        c.expect_method(60, 71, ch=1)
        ftype, chan, payload = c.recv_frame()
        assert ftype == FRAME_HEADER
        assert payload[12:] == hdr_props
        ftype, chan, payload = c.recv_frame()
        assert ftype == FRAME_BODY and payload == b"exact"


# ---------------------------------------------------------------- reply codes

def test_404_publish_to_missing_exchange(ch):
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.confirm_delivery()
        ch.basic_publish(uid("nx"), "k", b"x")
    closed_with(ei, 404)


def test_404_bind_missing(ch):
    q = uid()
    ch.queue_declare(q)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_bind(q, uid("nx"), "k")
    closed_with(ei, 404)


def test_404_get_missing_queue(ch):
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.basic_get(uid("nq"))
    closed_with(ei, 404)


def test_404_consume_missing_queue(ch):
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.basic_consume(uid("nq"), lambda *a: None)
    closed_with(ei, 404)


def test_403_reserved_names(conn):
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.exchange_declare("amq.mine", "direct")
    closed_with(ei, 403)
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare("amq.mine")
    closed_with(ei, 403)
    ch = conn.channel()
    ch.exchange_declare("amq.direct", "direct", durable=True)  # the builtin itself: fine
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_bind(uid(), "", "k")
    assert ei.value.reply_code in (403, 404)


def test_403_exclusive_consumer(amqp_port):
    q = uid()
    c1 = pika.BlockingConnection(params(amqp_port))
    c2 = pika.BlockingConnection(params(amqp_port))
    try:
        ch1 = c1.channel()
        ch1.queue_declare(q)
        ch1.basic_consume(q, lambda *a: None, exclusive=True)
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
            c2.channel().basic_consume(q, lambda *a: None)
        closed_with(ei, 403)
    finally:
        c1.close()
        c2.close()


def test_406_inequivalent_declare(conn):
    ch = conn.channel()
    q = uid()
    ch.queue_declare(q, durable=False)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, durable=True)
    closed_with(ei, 406)
    assert "durable" in ei.value.reply_text
    ch = conn.channel()
    ex = uid("ex")
    ch.exchange_declare(ex, "direct")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.exchange_declare(ex, "fanout")
    closed_with(ei, 406)


@pytest.mark.parametrize("args, text", [
    ({"x-message-ttl": -1}, "value_negative"),
    ({"x-message-ttl": "1000"}, "unacceptable_type"),
    ({"x-expires": 0}, "value_zero"),
    ({"x-max-length": -5}, "value_negative"),
    ({"x-overflow": "sideways"}, "unknown_overflow_type"),
    ({"x-max-priority": 300}, "value_too_large"),
    ({"x-dead-letter-routing-key": "k"}, "routing_key_but_no_dlx_defined"),
])
def test_406_bad_queue_arguments(ch, args, text):
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(uid(), arguments=args)
    closed_with(ei, 406)
    assert "PRECONDITION_FAILED - invalid arg" in ei.value.reply_text
    assert text in ei.value.reply_text


def test_406_unknown_delivery_tag(ch):
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.basic_ack(999)
        ch.queue_declare(uid())  # a round trip to see the close
    closed_with(ei, 406)
    assert "unknown delivery tag 999" in ei.value.reply_text


def test_406_delete_if_empty_if_unused(conn):
    ch = conn.channel()
    q = uid()
    ch.queue_declare(q)
    ch.basic_publish("", q, b"x")
    time.sleep(0.1)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_delete(q, if_empty=True)
    closed_with(ei, 406)
    ch = conn.channel()
    ch.basic_consume(q, lambda *a: None)
    other = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        other.queue_delete(q, if_unused=True)
    closed_with(ei, 406)


def test_406_user_id_mismatch(ch):
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.confirm_delivery()
        ch.basic_publish("", "q", b"x", pika.BasicProperties(user_id="mallory"))
    closed_with(ei, 406)


def test_503_unknown_exchange_type(conn):
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as ei:
        ch.exchange_declare(uid("ex"), "x-nonsense")
    closed_with(ei, 503)


def consume_args(q, tag):
    return struct.pack(">H", 0) + shortstr(q) + shortstr(tag) + b"\x00" + table()


def test_530_duplicate_consumer_tag(amqp_port):
    # pika refuses a duplicate tag itself: raw frames.
    q = uid()
    with RawConn(amqp_port) as c:
        c.handshake()
        c.open_channel(1)
        c.send_method(1, 50, 10, struct.pack(">H", 0) + shortstr(q) + b"\x00" + table())
        c.expect_method(50, 11, ch=1)
        c.send_method(1, 60, 20, consume_args(q, "dup"))
        c.expect_method(60, 21, ch=1)
        c.send_method(1, 60, 20, consume_args(q, "dup"))
        c.expect_close(530)


def test_540_immediate(amqp_port):
    q = uid()
    with RawConn(amqp_port) as c:
        c.handshake()
        c.open_channel(1)
        m = struct.pack(">HHH", 60, 40, 0) + shortstr("") + shortstr(q) + b"\x02"
        c.send_frame(FRAME_METHOD, 1, m)
        c.send_frame(FRAME_HEADER, 1, struct.pack(">HHQ", 60, 0, 1) + b"\x00\x00")
        c.send_frame(FRAME_BODY, 1, b"x")
        c.expect_close(540)


def test_body_over_limit_is_406(ch):
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.confirm_delivery()
        ch.basic_publish("", "q", b"x" * (256 * 1024 + 1))
    closed_with(ei, 406)


# ------------------------------------------------------------ other clients

def test_py_amqp_publish_consume(amqp_port):
    q = uid()
    c = amqp.Connection(host="127.0.0.1:%d" % amqp_port, connect_timeout=5)
    c.connect()
    try:
        ch = c.channel()
        ch.queue_declare(q)
        ch.confirm_select()
        ch.basic_publish(amqp.Message("pyamqp", application_headers={"h": 1}), "", q)
        got = []
        ch.basic_consume(q, callback=lambda m: got.append(m), no_ack=True)
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            c.drain_events(timeout=1)
        assert got[0].body in ("pyamqp", b"pyamqp") and got[0].headers == {"h": 1}
    finally:
        c.close()


def test_kombu_simple_queue(amqp_port):
    kombu = pytest.importorskip("kombu")
    with kombu.Connection("amqp://guest:guest@127.0.0.1:%d//" % amqp_port) as conn:
        sq = conn.SimpleQueue(uid("kombu"))
        sq.put({"hello": "world"})
        msg = sq.get(block=True, timeout=5)
        assert msg.payload == {"hello": "world"}
        msg.ack()
        sq.close()


def test_kombu_topic_producer_consumer(amqp_port):
    kombu = pytest.importorskip("kombu")
    ex = kombu.Exchange(uid("kx"), type="topic")
    q = kombu.Queue(uid("kq"), exchange=ex, routing_key="news.*")
    got = []
    with kombu.Connection("amqp://guest:guest@127.0.0.1:%d//" % amqp_port) as conn:
        with conn.Consumer(q, callbacks=[lambda body, m: (got.append(body), m.ack())]):
            producer = conn.Producer()
            producer.publish({"n": 1}, exchange=ex, routing_key="news.today", declare=[q])
            producer.publish({"n": 2}, exchange=ex, routing_key="sports.today")
            deadline = time.monotonic() + 5
            while not got and time.monotonic() < deadline:
                try:
                    conn.drain_events(timeout=1)
                except socket.timeout:
                    pass
    assert got == [{"n": 1}]


def test_aio_pika(amqp_port):
    aio_pika = pytest.importorskip("aio_pika")

    async def run():
        conn = await aio_pika.connect("amqp://guest:guest@127.0.0.1:%d/" % amqp_port)
        async with conn:
            ch = await conn.channel()  # publisher confirms by default
            q = await ch.declare_queue(uid("aio"), auto_delete=False)
            await ch.default_exchange.publish(
                aio_pika.Message(b"aio", headers={"x": "y"}), routing_key=q.name)
            msg = await q.get(timeout=5)
            await msg.ack()
            return msg.body, msg.headers
    body, headers = asyncio.run(asyncio.wait_for(run(), 20))
    assert body == b"aio" and headers == {"x": "y"}


@pytest.mark.skipif(shutil.which("amqp-consume") is None, reason="amqp-tools not installed")
def test_amqp_tools_publish_consume(amqp_port, ch):
    q = uid()
    ch.queue_declare(q)
    url = "amqp://guest:guest@127.0.0.1:%d" % amqp_port
    r = subprocess.run(["amqp-publish", "--url", url, "-r", q, "-C", "text/plain",
                        "-b", "from-cli"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(["amqp-consume", "--url", url, "-q", q, "-c", "1", "cat"],
                       capture_output=True, timeout=10)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"from-cli"


# ------------------------------------------------------------ REST <-> AMQP

def rest(warren, method, path, **kw):
    h = {"X-Project-Id": "default", "Client-ID": str(uuid.uuid4())}
    return requests.request(method, warren.url + path, headers=h, timeout=10, **kw)


def test_rest_post_amqp_consume(warren, ch):
    q = uid()
    ch.queue_declare(q, durable=True)
    r = rest(warren, "POST", "/v2/queues/%s/messages" % q,
             json={"messages": [{"body": {"event": "created", "n": 1}, "ttl": 300}]})
    assert r.status_code == 201, r.text
    m, p, b = get_body(ch, q)
    assert json.loads(b) == {"event": "created", "n": 1}
    assert p.content_type == "application/json"
    assert p.delivery_mode == 2  # durable queue
    assert m.routing_key == q and m.exchange == ""


def test_amqp_publish_rest_claim(warren, ch):
    q = uid()
    ch.queue_declare(q)
    ch.basic_publish("", q, b'{"from": "amqp"}', pika.BasicProperties(
        content_type="application/json", expiration="120000"))
    ch.basic_publish("", q, b"plain text")
    ch.basic_publish("", q, b"\xff\x00\xfe")
    time.sleep(0.2)
    r = rest(warren, "POST", "/v2/queues/%s/claims" % q, json={"ttl": 60, "grace": 60},
             params={"limit": 10})
    assert r.status_code == 201, r.text
    msgs = r.json()["messages"]
    bodies = [m["body"] for m in msgs]
    assert bodies == [{"from": "amqp"}, "plain text", base64.b64encode(b"\xff\x00\xfe").decode()]
    assert msgs[0]["ttl"] == 120


# ------------------------------------------------------------ channel order

def test_pipelined_nowait_methods_run_in_order(amqp_port):
    """One write: declare (nowait), bind (nowait), publish, get. RabbitMQ runs a
    channel's methods one after the other, so the get finds the message."""
    q, ex = uid(), uid("ex")
    # flag octets: exchange.declare and queue.declare nowait 0x10, queue.bind nowait 0x01
    declare_ex = struct.pack(">H", 0) + shortstr(ex) + shortstr("direct") + b"\x10" + table()
    declare_q = struct.pack(">H", 0) + shortstr(q) + b"\x10" + table()  # nowait
    bind = struct.pack(">H", 0) + shortstr(q) + shortstr(ex) + shortstr("k") + b"\x01" + table()
    get = struct.pack(">H", 0) + shortstr(q) + b"\x01"
    with RawConn(amqp_port) as c:
        c.handshake()
        c.open_channel(1)
        data = b""
        for cls, mid, args in ((40, 10, declare_ex), (50, 10, declare_q), (50, 20, bind)):
            p = struct.pack(">HH", cls, mid) + args
            data += struct.pack(">BHI", FRAME_METHOD, 1, len(p)) + p + b"\xce"
        data += publish_frames(1, ex, "k", b"ordered")
        p = struct.pack(">HH", 60, 70) + get
        data += struct.pack(">BHI", FRAME_METHOD, 1, len(p)) + p + b"\xce"
        c.send(data)
        c.expect_method(60, 71, ch=1)  # get-ok, not get-empty
        ftype, _, _ = c.recv_frame()
        assert ftype == FRAME_HEADER
        ftype, _, payload = c.recv_frame()
        assert ftype == FRAME_BODY and payload == b"ordered"


def test_replies_in_request_order(amqp_port):
    """Declares of queues on different shards, pipelined: declare-oks in order."""
    names = [uid() for _ in range(20)]
    with RawConn(amqp_port) as c:
        c.handshake()
        c.open_channel(1)
        data = b""
        for q in names:
            p = struct.pack(">HHH", 50, 10, 0) + shortstr(q) + b"\x00" + table()
            data += struct.pack(">BHI", FRAME_METHOD, 1, len(p)) + p + b"\xce"
        c.send(data)
        for q in names:
            args = c.expect_method(50, 11, ch=1)
            assert args[1:1 + args[0]] == q.encode()


def test_channel_flow_pauses_deliveries(ch):
    q = uid()
    ch.queue_declare(q)
    got = []
    ch.basic_consume(q, lambda c, m, p, b: got.append(b), auto_ack=True)
    ch.flow(False)
    ch.basic_publish("", q, b"held")
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        ch.connection.process_data_events(time_limit=0.1)
    assert got == []
    ch.flow(True)
    deadline = time.monotonic() + 3
    while not got and time.monotonic() < deadline:
        ch.connection.process_data_events(time_limit=0.1)
    assert got == [b"held"]


def test_nack_multiple_requeue(ch):
    q = uid()
    ch.queue_declare(q)
    for i in range(3):
        ch.basic_publish("", q, b"%d" % i)
    got = consume_n(ch, q, 3, auto_ack=False)
    ch.basic_nack(got[-1][0].delivery_tag, multiple=True, requeue=True)
    again = consume_n(ch, q, 3)
    assert [b for _, _, b in again] == [b"0", b"1", b"2"]
    assert all(m.redelivered for m, _, _ in again)
