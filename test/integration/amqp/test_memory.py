"""What a queued message costs in warrend's memory, read from its RSS as an
operator would (ps, /proc): issue 3's target is 1,000,000 queued 100-byte
messages in under 250 MiB, bench/amqp.sh's memory check measures that.

- 100,000 transient 100-byte messages in one queue cost under 200 bytes each
  (a 100-byte message is one 160-byte block plus its 16-byte index slot; a
  separate header and body came to 224 bytes);
- after the queue is deleted, RSS returns close to where it started within
  30 s without any further traffic (jemalloc's background thread purges
  freed pages; without it an idle broker kept its peak).

Release build with jemalloc only: ASan keeps freed memory in quarantine and
has its own allocator.
"""

import time

import pytest

import warren as wl

pika = pytest.importorskip("pika")

N = 100_000
BODY = b"m" * 100
PER_MESSAGE_MAX = 200  # bytes of RSS per queued message


def uses_jemalloc(pid):
    with open("/proc/%d/maps" % pid) as f:
        return "libjemalloc" in f.read()


@pytest.fixture(scope="module")
def broker(warren, amqp_port):
    if wl.is_asan(warren.binary) or not uses_jemalloc(warren.proc.pid):
        pytest.skip("RSS bounds hold for the release build linked with jemalloc")
    return warren


def queued(ch, queue):
    return ch.queue_declare(queue=queue, passive=True).method.message_count


def test_queued_messages_cost_and_return(broker, amqp_port):
    pid = broker.proc.pid
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", amqp_port))
    ch = conn.channel()
    ch.queue_declare(queue="mem-q")
    # A warm-up round trip, so connection and channel buffers are in the
    # starting figure.
    ch.basic_publish("", "mem-q", BODY)
    assert ch.basic_get("mem-q", auto_ack=True)[2] == BODY
    time.sleep(1)
    start = wl.rss(pid)

    props = pika.BasicProperties(delivery_mode=1)
    for _ in range(N):
        ch.basic_publish("", "mem-q", BODY, props)
    deadline = time.monotonic() + 60
    while queued(ch, "mem-q") < N and time.monotonic() < deadline:
        time.sleep(0.2)
    assert queued(ch, "mem-q") == N
    loaded = wl.rss(pid)
    per_msg = (loaded - start) / N
    assert per_msg < PER_MESSAGE_MAX, \
        "RSS %d -> %d: %.0f bytes per queued 100-byte message" % (start, loaded, per_msg)

    # The bytes are the ones published (the first and the last).
    m = ch.basic_get("mem-q", auto_ack=True)
    assert m[2] == BODY and m[1].delivery_mode == 1

    ch.queue_delete("mem-q")
    conn.close()
    deadline = time.monotonic() + 30
    now = wl.rss(pid)
    while now > start + (loaded - start) // 5 and time.monotonic() < deadline:
        time.sleep(0.5)
        now = wl.rss(pid)
    assert now <= start + (loaded - start) // 5, \
        "RSS %d at the start, %d loaded, still %d 30 s after the delete" % (start, loaded, now)
