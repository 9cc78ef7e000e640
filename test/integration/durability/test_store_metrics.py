"""What reaches the disk, as GET /metrics counts it (issue 4, items 1-3 and 7):

- group commit: concurrent confirmed persistent publishes, and concurrent
  REST posts, share syncs, by warren's own count and by RocksDB's
  (warren_store_rocksdb_wal_syncs_total, from its DB stats); with --fsync
  never nothing is synced at all; acknowledgements are synced only with
  --fsync always;
- transient messages never touch the disk: non-persistent AMQP messages on a
  durable queue, persistent ones on a transient queue and REST messages on a
  non-durable queue, published and consumed, write nothing;
- a REST queue is durable by its "_durable" flag, else by the server default
  (--rest-durable, true unless set): stored and back after a kill -9, or
  never written and gone;
- a message's TTL counts from its publish, across a kill -9 and restart,
  and one that expired while the broker was down is dead-lettered once;
- a consumed head acked at once (one multiple ack: the core writes it as one
  range delete) stays acked across a kill -9.

Clients: pika (confirm_delivery, delivery_mode 2, durable queues), requests.
"""

import threading
import time

import pika
import pytest
import requests

import durlib as dl
import warren as wl

PERSISTENT = pika.BasicProperties(delivery_mode=2)
TRANSIENT = pika.BasicProperties(delivery_mode=1)
PUBLISHERS = 8
EACH = 25
SYNCS = ("warren_store_syncs_total", "warren_store_rocksdb_wal_syncs_total")


@pytest.fixture
def broker(request):
    w = dl.durable_warren(getattr(request, "param", ()))
    w.start()
    yield w
    w.kill()
    w.cleanup()


def delta(before, after, name):
    assert name in after, "no %s in /metrics: %s" % (name, sorted(after))
    return after[name] - before.get(name, 0)


def publish_concurrently(w, queue):
    """PUBLISHERS connections, each publishing EACH persistent messages with
    confirms, all at once; returns how many were confirmed."""
    with dl.amqp_channel(w.amqp_port) as ch:
        ch.queue_declare(queue, durable=True)
    conns = [dl.amqp_connect(w.amqp_port) for _ in range(PUBLISHERS)]
    start = threading.Barrier(PUBLISHERS)
    confirmed = []
    errors = []

    def publish(conn, n):
        try:
            ch = conn.channel()
            ch.confirm_delivery()
            start.wait(10)
            for i in range(EACH):
                ch.basic_publish("", queue, b"%d-%d" % (n, i), PERSISTENT, mandatory=True)
                confirmed.append(1)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=publish, args=(c, n)) for n, c in enumerate(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for c in conns:
        dl.close_quietly(c)
    assert not errors, errors
    return len(confirmed)


def test_concurrent_confirmed_publishes_share_syncs(broker):
    w = broker
    before = dl.store_counters(w)
    n = publish_concurrently(w, "gc")
    assert n == PUBLISHERS * EACH
    after = dl.store_counters(w)
    syncs = {name: delta(before, after, name) for name in SYNCS}
    wal_writes = delta(before, after, "warren_store_rocksdb_wal_writes_total")
    print("%d confirmed messages: %r, %d RocksDB WAL writes" % (n, syncs, wal_writes))
    for name, s in syncs.items():
        # Every confirm waited for a sync; concurrent ones shared it.
        assert 0 < s < n, (name, s, n)
    # ... and one WAL write: a group is one RocksDB write batch.
    assert syncs["warren_store_rocksdb_wal_syncs_total"] <= wal_writes < n, (wal_writes, n)
    with dl.amqp_channel(w.amqp_port) as ch:
        assert ch.queue_declare("gc", passive=True).method.message_count == n


def test_concurrent_rest_posts_share_syncs(broker):
    """A 201 waits for its sync; posts in flight together share one."""
    w = broker
    api = wl.Api(w.url)
    api.create_queue("rest-gc", {"_durable": True})
    start = threading.Barrier(PUBLISHERS)
    created = []
    errors = []

    def post(n):
        try:
            with requests.Session() as s:
                start.wait(10)
                for i in range(EACH):
                    r = s.post(api.url("/v2/queues/rest-gc/messages"), headers=api.headers(),
                               json={"messages": [{"body": [n, i]}]}, timeout=30)
                    assert r.status_code == 201, wl.describe(r)
                    created.append(1)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    before = dl.store_counters(w)
    threads = [threading.Thread(target=post, args=(n,)) for n in range(PUBLISHERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    after = dl.store_counters(w)
    assert not errors, errors
    n = len(created)
    assert n == PUBLISHERS * EACH
    syncs = {name: delta(before, after, name) for name in SYNCS}
    print("%d REST posts answered 201: %r" % (n, syncs))
    for name, s in syncs.items():
        assert 0 < s < n, (name, s, n)
    assert api.stats("rest-gc")["total"] == n


@pytest.mark.parametrize("broker", [["--fsync", "never"]], indirect=True, ids=["never"])
def test_fsync_never_syncs_nothing(broker):
    w = broker
    before = dl.store_counters(w)
    n = publish_concurrently(w, "unsynced")
    after = dl.store_counters(w)
    for name in SYNCS:
        assert delta(before, after, name) == 0, name
    # Written all the same (to the WAL, in the page cache), and confirmed.
    assert delta(before, after, "warren_store_writes_total") >= n
    assert delta(before, after, "warren_store_rocksdb_wal_writes_total") > 0
    w.kill()
    w.start()
    with dl.amqp_channel(w.amqp_port) as ch:
        assert ch.queue_declare("unsynced", durable=True).method.message_count == n


@pytest.mark.parametrize("broker", [[], ["--fsync", "always"]], indirect=True,
                         ids=["batch", "always"])
def test_acks_are_synced_only_with_fsync_always(broker):
    """--fsync batch: acknowledgements (deletes) and delivery marks go to the
    WAL and wait for the next synced write; always: they are synced too."""
    w = broker
    always = "always" in w.extra_args
    with dl.amqp_channel(w.amqp_port) as ch:
        ch.confirm_delivery()
        ch.queue_declare("acked", durable=True)
        for i in range(20):
            ch.basic_publish("", "acked", b"%d" % i, PERSISTENT, mandatory=True)
        before = dl.store_counters(w)
        for _ in range(20):
            m, _, _ = ch.basic_get("acked", auto_ack=False)
            ch.basic_ack(m.delivery_tag)
        assert ch.queue_declare("acked", passive=True).method.message_count == 0
    after = dl.store_counters(w)
    assert delta(before, after, "warren_store_writes_total") > 0
    for name in SYNCS:
        assert (delta(before, after, name) > 0) == always, (name, delta(before, after, name))


WRITES = ("warren_store_writes_total", "warren_store_syncs_total",
          "warren_store_written_bytes_total", "warren_store_rocksdb_wal_writes_total")


def test_transient_messages_never_touch_the_disk(broker):
    w = broker
    api = wl.Api(w.url)
    r = api.put("/v2/queues/rest-transient", json={"_durable": False})
    assert r.status_code in (201, 204), wl.describe(r)
    conn = dl.amqp_connect(w.amqp_port)
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare("dq", durable=True)
    ch.queue_declare("tq", durable=False)
    before = dl.store_counters(w)

    for i in range(50):
        ch.basic_publish("", "dq", b"t%d" % i, TRANSIENT, mandatory=True)
        ch.basic_publish("", "tq", b"p%d" % i, PERSISTENT, mandatory=True)
    api.post_bodies("rest-transient", list(range(20)))
    for q in ("dq", "tq"):
        for _ in range(50):
            m, _, _ = ch.basic_get(q, auto_ack=False)
            assert m is not None, q
            ch.basic_ack(m.delivery_tag)
    c = api.claim("rest-transient", limit=20)
    assert c.status_code == 201, wl.describe(c)
    ids = [wl.message_id_from_href(m["href"]) for m in c.json()["messages"]]
    assert len(ids) == 20
    r = api.delete("/v2/queues/rest-transient/messages", params=wl.ids_qs(ids))
    assert r.status_code == 204, wl.describe(r)
    ch.queue_declare("dq", passive=True)  # a round trip after the acks

    after = dl.store_counters(w)
    assert {k: delta(before, after, k) for k in WRITES} == dict.fromkeys(WRITES, 0)

    # The counters do move: one persistent message on the durable queue.
    ch.basic_publish("", "dq", b"stored", PERSISTENT, mandatory=True)
    moved = dl.store_counters(w)
    assert all(delta(after, moved, k) > 0 for k in WRITES), (after, moved)
    conn.close()


def counts(w, queues):
    with dl.amqp_channel(w.amqp_port) as ch:
        return {q: ch.queue_declare(q, passive=True).method.message_count for q in queues}


def test_ttl_counts_from_the_publish_across_a_kill(broker):
    """Expiry is stored with the message, not restarted with the broker: a
    message whose TTL ran out while the broker was down is gone after the
    restart even though less than its TTL has passed since the restart, and
    is dead-lettered once, not again at the next restart."""
    w = broker
    ttl = 2.0
    queues = ("ttl-msg", "ttl-queue", "ttl-dead")
    with dl.amqp_channel(w.amqp_port) as ch:
        ch.confirm_delivery()
        ch.queue_declare("ttl-msg", durable=True)
        ch.queue_declare("ttl-dead", durable=True)
        ch.queue_declare("ttl-queue", durable=True, arguments={
            "x-message-ttl": int(ttl * 1000), "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": "ttl-dead"})
        ch.basic_publish("", "ttl-msg", b"short", pika.BasicProperties(
            delivery_mode=2, expiration=str(int(ttl * 1000))), mandatory=True)
        ch.basic_publish("", "ttl-msg", b"long", pika.BasicProperties(
            delivery_mode=2, expiration="600000"), mandatory=True)
        ch.basic_publish("", "ttl-queue", b"queue-ttl", PERSISTENT, mandatory=True)
    published = time.monotonic()
    time.sleep(1.0)
    w.kill()
    w.start()
    restarted = time.monotonic()
    assert restarted - published > 0.9
    time.sleep(max(0.0, published + ttl + 0.3 - time.monotonic()))
    # Polled (the first sweep after the start may still be ahead) only until
    # a TTL counted from the restart would have run out too.
    want = {"ttl-msg": 1, "ttl-queue": 0, "ttl-dead": 1}
    dl.wait_for(lambda: counts(w, queues) == want, restarted + ttl - 0.2 - time.monotonic(),
                "counts %r before %.1f s after the restart" % (want, ttl - 0.2))
    # The expiry and the dead-lettering were stored: nothing expires twice.
    w.kill()
    w.start()
    dl.wait_for(lambda: counts(w, queues) == want, 10, "counts %r" % (want,))
    time.sleep(0.3)  # a sweep after the start that found one more would show now
    assert counts(w, queues) == want
    with dl.amqp_channel(w.amqp_port) as ch:
        got = []
        for q in queues:
            while True:
                m, _, body = ch.basic_get(q, auto_ack=True)
                if m is None:
                    break
                got.append((q, body))
    assert got == [("ttl-msg", b"long"), ("ttl-dead", b"queue-ttl")]


def test_a_consumed_head_acked_at_once_stays_acked_after_a_kill(broker):
    w = broker
    conn = dl.amqp_connect(w.amqp_port)
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare("head", durable=True)
    for i in range(100):
        ch.basic_publish("", "head", b"%d" % i, PERSISTENT, mandatory=True)
    tags = []
    for i in range(100):
        m, _, body = ch.basic_get("head", auto_ack=False)
        assert body == b"%d" % i
        tags.append(m.delivery_tag)
    ch.basic_ack(tags[59], multiple=True)  # 0..59: one ack, one range delete
    ch.queue_declare("head", passive=True)  # answered after the ack is in the WAL
    w.kill()
    w.start()
    with dl.amqp_channel(w.amqp_port) as ch:
        back = []
        while True:
            m, _, body = ch.basic_get("head", auto_ack=True)
            if m is None:
                break
            back.append((int(body), m.redelivered))
    assert back == [(i, True) for i in range(60, 100)]


@pytest.mark.parametrize("broker", [[], ["--rest-durable", "false"]], indirect=True,
                         ids=["default", "rest-durable-false"])
def test_rest_queues_follow_their_flag_then_the_server_default(broker):
    w = broker
    default_durable = "--rest-durable" not in w.extra_args
    api = wl.Api(w.url)
    api.create_queue("plain")  # no "_durable": the server default decides
    api.create_queue("flagged", {"_durable": not default_durable})
    kept = {"plain": default_durable, "flagged": not default_durable}
    for q, durable in kept.items():
        r = api.get("/v2/queues/" + q)
        assert r.status_code == 200, wl.describe(r)
        # GET shows "_durable" only when the metadata set it.
        assert r.json().get("_durable") is (durable if q == "flagged" else None), (q, r.json())
        before = dl.store_counters(w)
        api.post_bodies(q, ["a", "b", "c"])
        wrote = delta(before, dl.store_counters(w), "warren_store_writes_total")
        assert (wrote > 0) == durable, (q, wrote)
    w.kill()
    w.start()
    for q, durable in kept.items():
        c = api.claim(q, limit=10)
        got = [m["body"] for m in c.json()["messages"]] if c.status_code == 201 else []
        assert got == (["a", "b", "c"] if durable else []), (q, wl.describe(c))
