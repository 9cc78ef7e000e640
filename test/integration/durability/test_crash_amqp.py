"""kill -9 in a loop under AMQP load (issue 4, item 5).

Several publishers (publisher confirms, persistent messages, through a durable
direct exchange with mandatory=True) and consumers (prefetch, manual acks)
run while warrend (--store rocksdb) is killed with SIGKILL and restarted on
the same data dir, cycle after cycle. Clients reconnect by themselves. After
the last restart the publishers stop and the consumers drain every queue;
then the ledger (durlib.Ledger) must show:

  - every confirmed message delivered at least once;
  - nothing delivered that no publisher sent;
  - no delivery of a message after its ack was known processed (basic.ack,
    then a synchronous queue.declare(passive) on the same channel, which the
    queue's shard answers after the ack);
  - a message delivered before a crash and not acked comes back with the
    redelivered flag (when its delivery mark is certainly stored: see
    Ledger.unflagged_redeliveries);
  - the bindings survived every restart (no publish came back unroutable);
  - after a clean stop and start the drained queues are still empty.
"""

import threading
import time

import pika
import pytest

import durlib as dl

EXCHANGE = "crash-x"
QUEUES = ["crash-q1", "crash-q2"]
PUBLISHERS = 4
CONSUMERS_PER_QUEUE = 2
CYCLES = dl.scaled(6, 4)
MIN_CONFIRMS_PER_CYCLE = dl.scaled(300, 60)
CYCLE_SECONDS = dl.scaled(2.0, 3.0)

pytestmark = pytest.mark.slow

AMQP_ERRORS = (pika.exceptions.AMQPError, OSError)


def publisher(port, idx, ledger, stop):
    n = 0
    while not stop.is_set():
        conn = None
        try:
            conn = dl.amqp_connect(port, stop)
            ch = conn.channel()
            ch.confirm_delivery()
            while not stop.is_set():
                q = QUEUES[n % len(QUEUES)]
                mid = "%d:%d" % (idx, n)
                n += 1
                ledger.attempt(mid)
                sent = time.monotonic()
                try:
                    ch.basic_publish(EXCHANGE, q, mid.encode(),
                                     pika.BasicProperties(delivery_mode=2), mandatory=True)
                except pika.exceptions.UnroutableError:
                    ledger.error("publish %s to %s came back unroutable (binding lost?)" % (mid, q))
                    continue
                except pika.exceptions.NackError:
                    continue  # not confirmed: may or may not come
                ledger.confirm(mid, q, sent)
        except AMQP_ERRORS:
            pass  # the broker was killed: reconnect
        finally:
            dl.close_quietly(conn)


class Consumer:
    """Acks each message LAG deliveries late (so a crash always finds some
    delivered and unacked), and makes the acks certain with a round trip."""

    LAG = 5
    PREFETCH = 30

    def __init__(self, port, queue, ledger):
        self.port, self.queue, self.ledger = port, queue, ledger
        self.stop = threading.Event()
        self.last_delivery = time.monotonic()
        self.idle = False
        self.thread = threading.Thread(target=self.run, daemon=True)

    def drained(self):
        return self.idle and time.monotonic() - self.last_delivery > 0.5

    def settle(self, ch, held, keep=0):
        """Acks all but the last `keep` of held (and drops them from it)."""
        done = held[:len(held) - keep]
        del held[:len(held) - keep]
        for tag, _ in done:
            ch.basic_ack(tag)
        ch.queue_declare(self.queue, passive=True)
        self.ledger.ack([mid for _, mid in done])

    def run(self):
        while not self.stop.is_set():
            conn = None
            held = []
            try:
                conn = dl.amqp_connect(self.port, self.stop)
                ch = conn.channel()
                ch.basic_qos(prefetch_count=self.PREFETCH)
                for m, _, body in ch.consume(self.queue, inactivity_timeout=0.2):
                    if m is None:
                        if held:
                            self.settle(ch, held)
                        self.idle = True
                        if self.stop.is_set():
                            break
                        continue
                    self.idle = False
                    self.last_delivery = time.monotonic()
                    mid = body.decode()
                    self.ledger.deliver(mid, self.queue, m.redelivered)
                    held.append((m.delivery_tag, mid))
                    if len(held) > self.LAG:
                        self.settle(ch, held, keep=self.LAG)
            except AMQP_ERRORS:
                self.idle = False
            finally:
                dl.close_quietly(conn)


def ready_counts(port):
    with dl.amqp_channel(port) as ch:
        return [ch.queue_declare(q, passive=True).method.message_count for q in QUEUES]


def declare_topology(port):
    with dl.amqp_channel(port) as ch:
        ch.exchange_declare(EXCHANGE, "direct", durable=True)
        for q in QUEUES:
            ch.queue_declare(q, durable=True)
            ch.queue_bind(q, EXCHANGE, routing_key=q)


@pytest.fixture(scope="module")
def run():
    """The whole loop once; the tests below each check one promise on its ledger."""
    w = dl.durable_warren()
    ledger = dl.Ledger()
    stop_pub = threading.Event()
    cons = []
    try:
        w.start()
        declare_topology(w.amqp_port)
        pubs = [threading.Thread(target=publisher, args=(w.amqp_port, i, ledger, stop_pub),
                                 daemon=True) for i in range(PUBLISHERS)]
        cons = [Consumer(w.amqp_port, q, ledger) for q in QUEUES
                for _ in range(CONSUMERS_PER_QUEUE)]
        dl.crash_run(w, ledger, pubs, stop_pub, cons, lambda: ready_counts(w.amqp_port),
                     CYCLES, CYCLE_SECONDS, MIN_CONFIRMS_PER_CYCLE)
        yield ledger
    finally:
        dl.crash_teardown(w, stop_pub, cons)


def test_every_confirmed_message_is_delivered(run):
    lost = run.lost()
    assert not lost, "%d confirmed messages lost, e.g. %s; %s" % (len(lost), lost[:10],
                                                                 run.summary())


def test_nothing_unpublished_is_delivered(run):
    forged = run.forged()
    assert not forged, "%d delivered messages never published: %s" % (len(forged), forged[:10])


def test_bindings_survive_every_restart(run):
    assert not run.errors, "\n".join(run.errors[:10])


def test_redelivered_flag_on_messages_delivered_before_the_crash(run):
    assert any(d[2] for d in run.deliveries), "no redelivery at all: the loop is too gentle"
    bad = run.unflagged_redeliveries()
    assert not bad, "%d redeliveries without the flag: %s" % (len(bad), bad[:10])


def test_an_ack_followed_by_a_confirmed_write_never_comes_back(run):
    back = run.acked_then_delivered(certain_only=True)
    assert not back, "acked messages delivered again:\n" + "\n".join(
        run.history(m) for m, _ in back[:5])


def test_an_acked_message_never_comes_back(run):
    back = run.acked_then_delivered()
    assert not back, "%d acked messages delivered again after kill -9: %s" \
        % (len(back), dl.ids_list(back))


def test_drained_queues_stay_empty_after_a_clean_restart(run):
    assert run.after_clean_restart == [0] * len(QUEUES)
