"""alternate-exchange, RabbitMQ's exchange.declare argument (pika).

As RabbitMQ's rabbit_exchange:route1/process_alternate: a message that an exchange's
own bindings send nowhere goes to its alternate exchange (AE), which follows the same
rule, so AEs chain; each exchange is visited once per publish, so cycles end. An
exchange that routes to another exchange has routed: its AE is not used even if that
exchange routes nowhere. basic.return (mandatory) only when nothing routed it in the
end. The argument must be a longstr (else 406), is part of the exchange's
equivalence (406 on redeclare with another or none), and a durable exchange keeps it
across a restart. Permission checks are in security/test_auth.py.
"""

import pytest

import pikalib
import warren as wl
from pikalib import params, uid

pika = pytest.importorskip("pika")


def connect(port):
    return pika.BlockingConnection(params(port))


@pytest.fixture
def ch(conn):
    c = conn.channel()
    c.confirm_delivery()
    return c


def get_body(ch, q, timeout=3.0):
    return pikalib.get_body(ch, q, timeout)[2]


def queue_on(ch, exchange, key=""):
    q = uid("q")
    ch.queue_declare(q, auto_delete=False)
    ch.queue_bind(q, exchange, key)
    return q


def test_unroutable_goes_to_the_alternate(ch):
    ae, x = uid("ae"), uid("x")
    ch.exchange_declare(ae, "fanout")
    ch.exchange_declare(x, "direct", arguments={"alternate-exchange": ae})
    qa, qx = queue_on(ch, ae), queue_on(ch, x, "bound")
    ch.basic_publish(x, "bound", b"routed", mandatory=True)
    ch.basic_publish(x, "other", b"unroutable", mandatory=True)  # no basic.return: the AE took it
    assert get_body(ch, qx) == b"routed"
    assert get_body(ch, qa) == b"unroutable"
    assert get_body(ch, qa, timeout=0.3) is None  # the routed one did not go to the AE


def test_alternate_routing_nowhere_returns_mandatory(ch):
    ae, x = uid("ae"), uid("x")
    ch.exchange_declare(ae, "direct")
    ch.exchange_declare(x, "topic", arguments={"alternate-exchange": ae})
    with pytest.raises(pika.exceptions.UnroutableError):
        ch.basic_publish(x, "a.b", b"lost", mandatory=True)


def test_chain_of_alternates(ch):
    ae2, ae1, x = uid("ae2"), uid("ae1"), uid("x")
    ch.exchange_declare(ae2, "fanout")
    ch.exchange_declare(ae1, "direct", arguments={"alternate-exchange": ae2})
    ch.exchange_declare(x, "headers", arguments={"alternate-exchange": ae1})
    q1, q2 = queue_on(ch, ae1, "k1"), queue_on(ch, ae2)
    ch.basic_publish(x, "k1", b"to-ae1", mandatory=True)
    ch.basic_publish(x, "k9", b"to-ae2", mandatory=True)
    assert get_body(ch, q1) == b"to-ae1"
    assert get_body(ch, q2) == b"to-ae2"
    assert get_body(ch, q2, timeout=0.3) is None


def test_cycle_of_alternates_ends(ch):
    a, b = uid("a"), uid("b")
    ch.exchange_declare(a, "direct", arguments={"alternate-exchange": b})
    ch.exchange_declare(b, "direct", arguments={"alternate-exchange": a})
    for _ in range(3):
        with pytest.raises(pika.exceptions.UnroutableError):
            ch.basic_publish(a, "k", b"loop", mandatory=True)
    # ... and an exchange that is its own alternate
    s = uid("self")
    ch.exchange_declare(s, "fanout", arguments={"alternate-exchange": s})
    with pytest.raises(pika.exceptions.UnroutableError):
        ch.basic_publish(s, "k", b"loop", mandatory=True)
    q = queue_on(ch, b, "k")
    ch.basic_publish(a, "k", b"via-b", mandatory=True)
    assert get_body(ch, q) == b"via-b"


def test_missing_alternate_and_internal_alternate(ch):
    x = uid("x")
    ch.exchange_declare(x, "direct", arguments={"alternate-exchange": uid("missing")})
    with pytest.raises(pika.exceptions.UnroutableError):
        ch.basic_publish(x, "k", b"m", mandatory=True)
    ae, y = uid("ae"), uid("y")
    ch.exchange_declare(ae, "fanout", internal=True)
    ch.exchange_declare(y, "direct", arguments={"alternate-exchange": ae})
    q = queue_on(ch, ae)
    ch.basic_publish(y, "k", b"through-internal", mandatory=True)
    assert get_body(ch, q) == b"through-internal"


def test_exchange_binding_counts_as_routed(ch):
    """x routes to exchange y (which routes nowhere): x has routed, so x's AE is not
    used; y's own AE is."""
    aex, aey, x, y = uid("aex"), uid("aey"), uid("x"), uid("y")
    ch.exchange_declare(aex, "fanout")
    ch.exchange_declare(aey, "fanout")
    ch.exchange_declare(x, "direct", arguments={"alternate-exchange": aex})
    ch.exchange_declare(y, "direct")
    ch.exchange_bind(y, x, "k")
    qx = queue_on(ch, aex)
    with pytest.raises(pika.exceptions.UnroutableError):
        ch.basic_publish(x, "k", b"m", mandatory=True)
    assert get_body(ch, qx, timeout=0.3) is None
    y2 = uid("y2")
    ch.exchange_declare(y2, "direct", arguments={"alternate-exchange": aey})
    ch.exchange_bind(y2, x, "k2")
    qy = queue_on(ch, aey)
    ch.basic_publish(x, "k2", b"via-y2-ae", mandatory=True)
    assert get_body(ch, qy) == b"via-y2-ae"
    assert get_body(ch, qx, timeout=0.3) is None


def test_default_exchange_as_alternate(ch):
    """An AE of "" is the default exchange: the queue named by the routing key."""
    x, q = uid("x"), uid("q")
    ch.queue_declare(q)
    ch.exchange_declare(x, "fanout", arguments={"alternate-exchange": ""})
    ch.basic_publish(x, q, b"to-q", mandatory=True)
    assert get_body(ch, q) == b"to-q"


def test_equivalence_and_type(conn):
    ch = conn.channel()
    ae, x = uid("ae"), uid("x")
    ch.exchange_declare(x, "direct", arguments={"alternate-exchange": ae})
    ch.exchange_declare(x, "direct", arguments={"alternate-exchange": ae})
    ch.exchange_declare(x, "direct", passive=True)
    for args in ({"alternate-exchange": "other"}, {}):
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
            ch.exchange_declare(x, "direct", arguments=args)
        assert ei.value.reply_code == 406, ei.value
        assert "alternate-exchange" in ei.value.reply_text
        ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.exchange_declare(uid("x"), "direct", arguments={"alternate-exchange": 5})
    assert ei.value.reply_code == 406
    assert "invalid type" in ei.value.reply_text and "alternate-exchange" in ei.value.reply_text
    ch = conn.channel()
    ch.exchange_delete(x)


def test_durable_exchange_keeps_its_alternate_across_restart():
    w = wl.Warren(shards=2, extra_args=["--store", "rocksdb"])
    try:
        w.start()
        c = connect(w.amqp_port)
        ch = c.channel()
        ch.exchange_declare("d-ae", "fanout", durable=True)
        ch.exchange_declare("d-x", "direct", durable=True,
                            arguments={"alternate-exchange": "d-ae"})
        ch.exchange_declare("t-x", "direct", durable=False,
                            arguments={"alternate-exchange": "d-ae"})
        ch.queue_declare("d-q", durable=True)
        ch.queue_bind("d-q", "d-ae")
        c.close()
        assert w.stop() == 0, w.log_tail()
        w.start()
        c = connect(w.amqp_port)
        ch = c.channel()
        ch.confirm_delivery()
        ch.basic_publish("d-x", "nobody", b"after-restart", mandatory=True,
                         properties=pika.BasicProperties(delivery_mode=2))
        assert get_body(ch, "d-q") == b"after-restart"
        ch.exchange_declare("d-x", "direct", durable=True,
                            arguments={"alternate-exchange": "d-ae"})
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
            ch.exchange_declare("d-x", "direct", durable=True)
        assert ei.value.reply_code == 406
        ch = c.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
            ch.exchange_declare("t-x", "direct", passive=True)
        assert ei.value.reply_code == 404
        c.close()
        assert w.stop() == 0, w.log_tail()
    finally:
        w.cleanup()
