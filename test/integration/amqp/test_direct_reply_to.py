"""Direct reply-to, RabbitMQ's amq.rabbitmq.reply-to (pika).

The client consumes (no_ack) from the pseudo-queue "amq.rabbitmq.reply-to" and
publishes requests with reply_to "amq.rabbitmq.reply-to"; the broker rewrites it to
"amq.rabbitmq.reply-to.<token>"; a server on another connection answers to the
default exchange with that routing key and the answer reaches the consumer. Errors as
RabbitMQ's rabbit_channel: consuming with acks, or a second reply consumer on the
channel, 406; publishing with that reply_to without a reply consumer, 406; a reply to
a consumer that is gone is dropped, or returned when mandatory.
"""

import time
import uuid

import pytest

from pikalib import get_body, params

pika = pytest.importorskip("pika")

REPLY_TO = "amq.rabbitmq.reply-to"


def connect(port):
    return pika.BlockingConnection(params(port))


@pytest.fixture
def conns(amqp_port):
    made = []

    def make():
        c = connect(amqp_port)
        made.append(c)
        return c
    yield make
    for c in made:
        if c.is_open:
            c.close()


def wait_for(conn, pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not pred() and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.05)
    return pred()


def test_capability_advertised(conns):
    c = conns()
    assert c._impl.server_capabilities["direct_reply_to"] is True


def test_rpc_round_trip(conns):
    """A pika RPC: the server consumes a named queue on its own connection and answers
    to the rewritten reply_to; the client gets the answers on its reply consumer."""
    server, client = conns(), conns()
    sch = server.channel()
    rpc_q = "rpc-%s" % uuid.uuid4().hex[:12]
    sch.queue_declare(rpc_q, auto_delete=True)
    seen_reply_to = []

    def on_request(ch, method, props, body):
        seen_reply_to.append(props.reply_to)
        ch.basic_publish("", props.reply_to, b"answer:" + body,
                         properties=pika.BasicProperties(correlation_id=props.correlation_id))

    sch.basic_consume(rpc_q, on_request, auto_ack=True)

    cch = client.channel()
    answers = []
    ok = cch.basic_consume(REPLY_TO, lambda ch, m, p, b: answers.append((m, p, b)),
                           auto_ack=True)
    for i in range(3):
        cch.basic_publish("", rpc_q, b"q%d" % i, properties=pika.BasicProperties(
            reply_to=REPLY_TO, correlation_id="c%d" % i, content_type="text/plain"))
    assert wait_for(server, lambda: len(seen_reply_to) == 3)
    assert wait_for(client, lambda: len(answers) == 3)
    assert [b for _, _, b in answers] == [b"answer:q0", b"answer:q1", b"answer:q2"]
    assert [p.correlation_id for _, p, _ in answers] == ["c0", "c1", "c2"]
    name = seen_reply_to[0]
    assert name.startswith(REPLY_TO + ".") and len(name) > len(REPLY_TO) + 16
    assert set(seen_reply_to) == {name}
    m = answers[0][0]
    assert m.routing_key == name and m.exchange == "" and m.consumer_tag == ok


def test_reply_to_other_properties_untouched(conns):
    """Only reply_to changes; headers before it and fields after it survive."""
    c = conns()
    ch = c.channel()
    q = "rt-%s" % uuid.uuid4().hex[:12]
    ch.queue_declare(q, auto_delete=True)
    ch.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
    ch.basic_publish("", q, b"x", properties=pika.BasicProperties(
        headers={"h": 1, "nested": {"a": [1, "b"]}}, reply_to=REPLY_TO, expiration="60000",
        message_id="mid", app_id="app", delivery_mode=2, priority=3))
    m, p, b = get_body(ch, q)
    assert b == b"x"
    assert p.reply_to.startswith(REPLY_TO + ".")
    assert p.headers == {"h": 1, "nested": {"a": [1, "b"]}}
    assert (p.expiration, p.message_id, p.app_id, p.delivery_mode, p.priority) == \
        ("60000", "mid", "app", 2, 3)


def test_consume_with_acks_is_406(conns):
    ch = conns().channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.basic_consume(REPLY_TO, lambda *a: None, auto_ack=False)
    assert ei.value.reply_code == 406
    assert ei.value.reply_text == "PRECONDITION_FAILED - reply consumer cannot acknowledge"


def test_second_reply_consumer_is_406(conns):
    ch = conns().channel()
    ch.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
    assert ei.value.reply_code == 406
    assert ei.value.reply_text == "PRECONDITION_FAILED - reply consumer already set"


def test_publish_without_reply_consumer_is_406(conns):
    c = conns()
    ch = c.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.basic_publish("", "anything", b"x",
                         properties=pika.BasicProperties(reply_to=REPLY_TO))
        ch.basic_get("amq.rabbitmq.none")  # a round trip: the close comes first
    assert ei.value.reply_code == 406
    assert ei.value.reply_text == "PRECONDITION_FAILED - fast reply consumer does not exist"
    # Another channel with a reply consumer does not help this one.
    ch2 = c.channel()
    ch2.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
    ch3 = c.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch3.basic_publish("", "anything", b"x",
                          properties=pika.BasicProperties(reply_to=REPLY_TO))
        ch3.basic_get("amq.rabbitmq.none")
    assert ei.value.reply_code == 406


def _reply_name(c, ch, target_q):
    """Publishes a request with reply_to on ch and reads the rewritten name back."""
    ch.basic_publish("", target_q, b"req", properties=pika.BasicProperties(reply_to=REPLY_TO))
    m, p, b = get_body(ch, target_q)
    assert m is not None, "request not delivered"
    return p.reply_to


def test_reply_to_gone_consumer_dropped_or_returned(conns):
    client, server = conns(), conns()
    cch = client.channel()
    q = "gone-%s" % uuid.uuid4().hex[:12]
    cch.queue_declare(q, auto_delete=False)
    tag = cch.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
    name = _reply_name(client, cch, q)
    cch.basic_cancel(tag)
    # After the cancel the channel has no reply consumer any more.
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        cch.basic_publish("", q, b"x", properties=pika.BasicProperties(reply_to=REPLY_TO))
        cch.basic_get(q)
    assert ei.value.reply_code == 406
    sch = server.channel()
    sch.confirm_delivery()
    sch.basic_publish("", name, b"late")  # dropped: confirmed, nothing raised
    with pytest.raises(pika.exceptions.UnroutableError):
        sch.basic_publish("", name, b"late", mandatory=True)
    # A closed connection's reply queue goes too.
    other = conns()
    och = other.channel()
    och.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
    name2 = _reply_name(other, och, q)
    other.close()
    time.sleep(0.2)
    with pytest.raises(pika.exceptions.UnroutableError):
        sch.basic_publish("", name2, b"late", mandatory=True)
    sch.queue_delete(q)


def test_reply_queue_is_the_consumers_alone(conns):
    """Another connection may answer but not consume, purge or delete the reply queue."""
    client, other = conns(), conns()
    cch = client.channel()
    got = []
    cch.basic_consume(REPLY_TO, lambda ch, m, p, b: got.append(b), auto_ack=True)
    q = "own-%s" % uuid.uuid4().hex[:12]
    cch.queue_declare(q, auto_delete=False)
    name = _reply_name(client, cch, q)
    och = other.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        och.basic_consume(name, lambda *a: None, auto_ack=True)
    assert ei.value.reply_code == 405
    och = other.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        och.queue_delete(name)
    assert ei.value.reply_code == 405
    och = other.channel()
    och.basic_publish("", name, b"still-works")
    assert wait_for(client, lambda: got == [b"still-works"])
    cch.queue_delete(q)
