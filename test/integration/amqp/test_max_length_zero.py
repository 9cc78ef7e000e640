"""x-max-length 0 and x-max-length-bytes 0: a queue that keeps nothing (pika).

RabbitMQ (rabbit_amqqueue_process: maybe_deliver_or_enqueue, deliver_or_enqueue,
maybe_drop_head) treats 0 as a limit, not as "unlimited":
  drop-head           a message goes to a consumer that can take it at once (no_ack,
                      or prefetch room); otherwise it is dropped straight away, and
                      dead-lettered with reason maxlen when the queue has a DLX
  reject-publish      every publish is refused (nacked under confirms), even with a
                      waiting consumer: the overflow check comes before delivery
Delivered, unacked messages are not counted (only ready ones are), so they stay.
"""

import time

import pytest

from pikalib import get_body, uid

pika = pytest.importorskip("pika")


@pytest.mark.parametrize("arg", ["x-max-length", "x-max-length-bytes"])
def test_zero_keeps_nothing_without_consumer(ch, arg):
    q = uid()
    ch.queue_declare(q, arguments={arg: 0})
    ch.confirm_delivery()
    for i in range(3):
        ch.basic_publish("", q, b"m%d" % i)  # confirmed: accepted, then dropped
    assert ch.queue_declare(q, passive=True).method.message_count == 0
    assert ch.basic_get(q, auto_ack=True)[0] is None


def test_zero_is_a_limit_not_unlimited(ch, conn):
    """Redeclaring without the argument is inequivalent (406), as in RabbitMQ."""
    q = uid()
    ch.queue_declare(q, arguments={"x-max-length": 0})
    ch.queue_declare(q, arguments={"x-max-length": 0})
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(q)
    assert ei.value.reply_code == 406 and "x-max-length" in ei.value.reply_text
    ch2 = conn.channel()
    ch2.queue_delete(q)


def test_zero_drops_are_dead_lettered_maxlen(ch):
    dlx, dlq, q = uid("dlx"), uid("dlq"), uid()
    ch.exchange_declare(dlx, "fanout")
    ch.queue_declare(dlq)
    ch.queue_bind(dlq, dlx)
    ch.queue_declare(q, arguments={"x-max-length": 0, "x-dead-letter-exchange": dlx})
    ch.basic_publish("", q, b"gone")
    m, p, b = get_body(ch, dlq, timeout=5)
    assert b == b"gone"
    death = p.headers["x-death"][0]
    assert death["reason"] == "maxlen" and death["queue"] == q
    assert ch.queue_declare(q, passive=True).method.message_count == 0


def test_zero_delivers_to_a_waiting_consumer_first(conn, ch):
    q = uid()
    ch.queue_declare(q, arguments={"x-max-length": 0})
    got = []
    ch.basic_consume(q, lambda c, m, p, b: got.append(b), auto_ack=True)
    pub = conn.channel()
    for i in range(5):
        pub.basic_publish("", q, b"%d" % i)
    deadline = time.monotonic() + 5
    while len(got) < 5 and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.05)
    assert got == [b"0", b"1", b"2", b"3", b"4"]


def test_zero_with_prefetch_keeps_unacked_and_drops_the_rest(conn, ch):
    """prefetch 1: the first message is delivered (and stays while unacked), the
    next ones find no consumer with room and are dead-lettered at once."""
    dlx, dlq, q = uid("dlx"), uid("dlq"), uid()
    ch.exchange_declare(dlx, "fanout")
    ch.queue_declare(dlq)
    ch.queue_bind(dlq, dlx)
    ch.queue_declare(q, arguments={"x-max-length": 0, "x-dead-letter-exchange": dlx})
    ch.basic_qos(prefetch_count=1)
    got = []
    ch.basic_consume(q, lambda c, m, p, b: got.append((m, b)), auto_ack=False)
    pub = conn.channel()
    pub.confirm_delivery()
    pub.basic_publish("", q, b"first")
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.05)
    assert [b for _, b in got] == [b"first"]
    pub.basic_publish("", q, b"second")
    pub.basic_publish("", q, b"third")
    assert get_body(pub, dlq, timeout=5)[2] == b"second"
    assert get_body(pub, dlq, timeout=5)[2] == b"third"
    conn.process_data_events(time_limit=0.2)
    assert len(got) == 1  # nothing else was delivered
    ok = pub.queue_declare(q, passive=True).method
    assert ok.message_count == 0 and ok.consumer_count == 1
    ch.basic_ack(got[0][0].delivery_tag)


def test_zero_reject_publish_nacks_even_with_a_consumer(conn, ch):
    q = uid()
    ch.queue_declare(q, arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
    got = []
    ch.basic_consume(q, lambda c, m, p, b: got.append(b), auto_ack=True)
    pub = conn.channel()
    pub.confirm_delivery()
    with pytest.raises(pika.exceptions.NackError):
        pub.basic_publish("", q, b"refused")
    conn.process_data_events(time_limit=0.2)
    assert got == []


def test_zero_reject_publish_dlx(ch):
    dlx, dlq, q = uid("dlx"), uid("dlq"), uid()
    ch.exchange_declare(dlx, "fanout")
    ch.queue_declare(dlq)
    ch.queue_bind(dlq, dlx)
    ch.queue_declare(q, arguments={"x-max-length-bytes": 0, "x-overflow": "reject-publish-dlx",
                                   "x-dead-letter-exchange": dlx})
    ch.confirm_delivery()
    with pytest.raises(pika.exceptions.NackError):
        ch.basic_publish("", q, b"refused")
    m, p, b = get_body(ch, dlq, timeout=5)
    assert b == b"refused" and p.headers["x-death"][0]["reason"] == "maxlen"


def test_zero_requeued_message_is_dropped_not_redelivered(conn, ch):
    """RabbitMQ's requeue_and_run applies the limit before it delivers: a message
    nacked with requeue into a queue that keeps nothing is dead-lettered (maxlen),
    and so is an unacked one when its channel closes."""
    dlx, dlq, q = uid("dlx"), uid("dlq"), uid()
    ch.exchange_declare(dlx, "fanout")
    ch.queue_declare(dlq)
    ch.queue_bind(dlq, dlx)
    ch.queue_declare(q, arguments={"x-max-length": 0, "x-dead-letter-exchange": dlx})
    cch = conn.channel()
    cch.basic_qos(prefetch_count=10)
    got = []
    cch.basic_consume(q, lambda c, m, p, b: got.append((m, b)), auto_ack=False)
    ch.basic_publish("", q, b"nacked")
    ch.basic_publish("", q, b"closed")
    deadline = time.monotonic() + 5
    while len(got) < 2 and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.05)
    assert [b for _, b in got] == [b"nacked", b"closed"]
    cch.basic_nack(got[0][0].delivery_tag, requeue=True)
    m, p, b = get_body(ch, dlq, timeout=5)
    assert b == b"nacked" and p.headers["x-death"][0]["reason"] == "maxlen"
    cch.close()
    m, p, b = get_body(ch, dlq, timeout=5)
    assert b == b"closed" and p.headers["x-death"][0]["reason"] == "maxlen"
    conn.process_data_events(time_limit=0.2)
    assert len(got) == 2  # neither came back
    assert ch.queue_declare(q, passive=True).method.message_count == 0
