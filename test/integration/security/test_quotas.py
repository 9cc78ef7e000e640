"""Per-tenant quotas (issue 5 point 3): every key set with the warrenctl binary
trips with the right AMQP code/text (pika, py-amqp) and HTTP status/JSON/
Retry-After (requests); a tenant without quotas is unaffected at the same
moment; raising a quota lets the tenant go on; counters survive a restart
with --store rocksdb.

Each test uses its own tenant (tq_<key>) next to the free tenant "tfree".
"""
import time
import uuid

import pytest
import requests

import warren as wl
from test_auth import Server

pika = pytest.importorskip("pika")
amqp = pytest.importorskip("amqp")


def start(extra=(), data_dir=None):
    return wl.start_or_fail(wl.Warren(shards=2, data_dir=data_dir,
                                      extra_args=["--auth", "required"] + list(extra)))


@pytest.fixture(scope="module")
def srv():
    w = start(["--store", "memory"])
    s = Server(w)
    s.ok("user", "add", "u", "pw")
    s.ok("tenant", "add", "tfree")
    s.ok("grant", "u", "tfree")
    yield s
    rc = w.stop()
    tail = w.log_tail()
    w.cleanup()
    assert rc == 0, "warrend exit status %r\n%s" % (rc, tail)


def tenant(s, name, **quotas):
    s.ok("tenant", "add", name)
    s.ok("grant", "u", name)
    for k, v in quotas.items():
        s.ok("quota", "set", name, k.replace("_", "-"), str(v))
    return name


def rest(s, method, path, project, **kw):
    h = {"Client-ID": str(uuid.uuid4()), "X-Project-Id": project}
    return requests.request(method, s.w.url + path, headers=h, auth=("u", "pw"), timeout=30, **kw)


def post(s, project, queue, n=1, size=1):
    return rest(s, "POST", "/v2/queues/%s/messages" % queue, project,
                json={"messages": [{"body": "x" * size, "ttl": 300}] * n})


def conn(s, vhost):
    return pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", s.w.amqp_port, vhost, pika.PlainCredentials("u", "pw"),
        connection_attempts=1, socket_timeout=10))


def test_quota_list_shows_values(srv):
    t = tenant(srv, "tq_list", max_queues=3)
    assert "max-queues" in srv.ok("quota", "list", t)


def test_max_queues(srv):
    t = tenant(srv, "tq_queues", max_queues=1)
    c = conn(srv, t)
    ch = c.channel()
    ch.queue_declare("q1")
    ch.queue_declare("q1")  # redeclaring is fine
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare("q2")
    assert e.value.reply_code == 406
    assert "queue limit in vhost '%s' (1) is reached" % t in e.value.reply_text
    # REST: a queue PUT and a post that would create one: 403 JSON.
    r = rest(srv, "PUT", "/v2/queues/q3", t, json={})
    assert r.status_code == 403, r.text
    assert "max-queues" in r.json()["description"]
    assert post(srv, t, "q4").status_code == 403
    # The free tenant, at the same moment.
    assert rest(srv, "PUT", "/v2/queues/q3", "tfree", json={}).status_code == 201
    srv.ok("quota", "set", t, "max-queues", "2")
    assert rest(srv, "PUT", "/v2/queues/q3", t, json={}).status_code == 201
    c.close()


def test_max_exchanges(srv):
    t = tenant(srv, "tq_exch", max_exchanges=1)
    c = conn(srv, t)
    ch = c.channel()
    ch.exchange_declare("e1", "direct")
    ch.exchange_declare("e1", "direct")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.exchange_declare("e2", "fanout")
    assert e.value.reply_code == 406
    assert "exchange limit in vhost '%s' (1) is reached" % t in e.value.reply_text
    conn(srv, "tfree").channel().exchange_declare("e2", "fanout")
    c.close()


def test_max_connections_and_channels(srv):
    t = tenant(srv, "tq_conn", max_connections=1, max_channels=2)
    c1 = conn(srv, t)
    with pytest.raises(pika.exceptions.AMQPConnectionError) as e:
        conn(srv, t)
    assert "(530)" in str(e.value)
    assert "connection limit (1) of vhost '%s' reached" % t in str(e.value)
    free = [conn(srv, "tfree") for _ in range(3)]
    c1.channel()
    c1.channel()
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
        c1.channel()
    assert e.value.reply_code == 530
    assert "maximum allowed limit of (2)" in e.value.reply_text
    # The closed connection no longer counts.
    deadline = time.time() + 5
    while True:
        try:
            c2 = conn(srv, t)
            break
        except pika.exceptions.AMQPConnectionError:
            assert time.time() < deadline
            time.sleep(0.1)
    c2.close()
    for f in free:
        f.close()


def unconfirmed_publish_closes(c, why):
    """A publish over a limit on a new channel without confirms closes that
    channel with 406 and `why` in the text (seen on the next synchronous
    method): refused, not silently dropped."""
    ch = c.channel()
    ch.basic_publish("", "q", b"over")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare("q", passive=True)
    assert e.value.reply_code == 406 and why in e.value.reply_text, e.value

def test_max_queue_messages_amqp_and_rest(srv):
    t = tenant(srv, "tq_qmsg", max_queue_messages=2)
    c = conn(srv, t)
    ch = c.channel()
    ch.queue_declare("q")
    ch.confirm_delivery()
    ch.basic_publish("", "q", b"1")
    ch.basic_publish("", "q", b"2")
    with pytest.raises(pika.exceptions.NackError):
        ch.basic_publish("", "q", b"3")
    # Without confirms: the channel is closed with 406, nothing dropped silently.
    unconfirmed_publish_closes(c, "max-queue-messages 2")
    r = post(srv, t, "q")
    assert r.status_code == 403 and "max-queue-messages" in r.json()["description"]
    assert post(srv, "tfree", "q", n=5).status_code == 201
    srv.ok("quota", "set", t, "max-queue-messages", "0")
    assert post(srv, t, "q").status_code == 201
    c.close()


def test_max_queue_bytes_and_tenant_limits(srv):
    t = tenant(srv, "tq_bytes", max_queue_bytes=100)
    assert post(srv, t, "q", size=60).status_code == 201
    assert post(srv, t, "q", size=60).status_code == 403
    t2 = tenant(srv, "tq_tmsg", max_tenant_messages=3)
    assert post(srv, t2, "a", n=2).status_code == 201
    assert post(srv, t2, "b", n=1).status_code == 201
    r = post(srv, t2, "c")
    assert r.status_code == 403 and "max-tenant-messages" in r.json()["description"]
    c = conn(srv, t2)
    ch = c.channel()
    ch.confirm_delivery()
    with pytest.raises(pika.exceptions.NackError):
        ch.basic_publish("", "a", b"x")
    c.close()
    t3 = tenant(srv, "tq_tbytes", max_tenant_bytes=100)
    assert post(srv, t3, "a", size=80).status_code == 201
    r = post(srv, t3, "b", size=80)
    assert r.status_code == 403 and "max-tenant-bytes" in r.json()["description"]


def test_max_message_bytes(srv):
    t = tenant(srv, "tq_size", max_message_bytes=100)
    assert post(srv, t, "q", size=90).status_code == 201  # the JSON body: 92 bytes
    r = post(srv, t, "q", size=101)
    assert r.status_code == 413 and "max-message-bytes" in r.json()["description"]
    assert post(srv, "tfree", "q", size=1000).status_code == 201
    c = conn(srv, t)
    ch = c.channel()
    ch.queue_declare("q", passive=True)
    ch.basic_publish("", "q", b"x" * 101)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare("q", passive=True)
    assert e.value.reply_code == 406 and "max-message-bytes 100" in e.value.reply_text
    c.close()


def test_publish_rate(srv):
    t = tenant(srv, "tq_rate", publish_rate=1, publish_burst=2)
    # A post to a missing queue is two publishes (the first finds no queue).
    assert rest(srv, "PUT", "/v2/queues/q", t, json={}).status_code == 201
    assert post(srv, t, "q").status_code == 201
    assert post(srv, t, "q").status_code == 201
    r = post(srv, t, "q")
    assert r.status_code == 429, r.text
    assert int(r.headers["Retry-After"]) >= 1
    assert "publish-rate" in r.json()["description"]
    assert post(srv, "tfree", "q", n=10).status_code == 201
    c = conn(srv, t)
    ch = c.channel()
    ch.confirm_delivery()
    with pytest.raises(pika.exceptions.NackError):
        ch.basic_publish("", "q", b"x")
    unconfirmed_publish_closes(c, "publish rate limit")
    c.close()
    srv.ok("quota", "set", t, "publish-rate", "1000")
    assert post(srv, t, "q").status_code == 201


def test_counters_survive_restart_rocksdb(tmp_path):
    data = str(tmp_path / "data")
    w = start(["--store", "rocksdb"], data_dir=data)
    s = Server(w)
    s.ok("user", "add", "u", "pw")
    t = tenant(s, "tq_restart", max_tenant_messages=3)
    c = conn(s, t)
    ch = c.channel()
    ch.queue_declare("d", durable=True)
    ch.confirm_delivery()
    for i in range(3):
        ch.basic_publish("", "d", b"m", pika.BasicProperties(delivery_mode=2))
    c.close()
    assert w.stop() == 0
    w2 = wl.Warren(shards=2, data_dir=data, extra_args=["--auth", "required", "--store", "rocksdb"])
    w2.start()
    try:
        s2 = Server(w2)
        r = post(s2, t, "d")
        assert r.status_code == 403, r.text  # 3 recovered messages count
        s2.ok("quota", "set", t, "max-tenant-messages", "4")
        assert post(s2, t, "d").status_code == 201
    finally:
        w2.stop()
        w2.cleanup()
        w.cleanup()
