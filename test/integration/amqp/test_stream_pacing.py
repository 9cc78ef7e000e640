"""A publisher that streams fast is read in larger batches: the socket's
SO_RCVLOWAT is raised so that the broker wakes once several frames wait,
not for each (frontends/amqp/amqp.c, pace()). What the publisher sends after
its stream, too little to reach that mark, must still be read promptly.
"""

import struct
import time

import pytest

import pikalib
from pikalib import uid
from rawamqp import FRAME_BODY, FRAME_END, FRAME_HEADER, FRAME_METHOD, RawConn, shortstr

pika = pytest.importorskip("pika")


def depth(port, q):
    c = pika.BlockingConnection(pikalib.params(port))
    try:
        return c.channel().queue_declare(q, passive=True).method.message_count
    finally:
        c.close()


def wait_depth(port, q, n, timeout):
    deadline = time.monotonic() + timeout
    while True:
        d = depth(port, q)
        if d >= n or time.monotonic() >= deadline:
            return d
        time.sleep(0.02)


@pytest.mark.parametrize("tail", [1, 5])
def test_what_follows_a_stream_is_not_held(amqp_port, ch, tail):
    q = uid()
    ch.queue_declare(q)
    body = b"s" * 4096
    for _ in range(3000):  # ~12 MB as fast as pika writes: well above the streaming rate
        ch.basic_publish("", q, body)
    assert wait_depth(amqp_port, q, 3000, 10) == 3000
    # Then a few small frames, far under the mark, and nothing more.
    for i in range(tail):
        ch.basic_publish("", q, b"tail-%d" % i)
    t0 = time.monotonic()
    got = wait_depth(amqp_port, q, 3000 + tail, 5)
    assert got == 3000 + tail, "the last %d messages were held (depth %d)" % (tail, got)
    assert time.monotonic() - t0 < 2.0


def publish_frames(q, body):
    method = struct.pack(">HHH", 60, 40, 0) + shortstr("") + shortstr(q) + b"\x00"
    header = struct.pack(">HHQH", 60, 0, len(body), 0)
    return b"".join(struct.pack(">BHI", t, 1, len(p)) + p + FRAME_END
                    for t, p in ((FRAME_METHOD, method), (FRAME_HEADER, header),
                                 (FRAME_BODY, body)))


def acked_up_to(c, tag, timeout):
    """Reads basic.acks on channel 1 until one covers `tag` (raises on timeout)."""
    while True:
        m = c.recv_method(timeout)
        assert m is not None, "the server closed the connection"
        assert (m[1], m[2]) == (60, 80), "expected basic.ack, got %d.%d" % (m[1], m[2])
        got, = struct.unpack(">Q", m[3][:8])
        if got >= tag:
            return


def test_a_confirm_after_a_stream_comes_at_once(amqp_port, ch):
    """A publisher with confirms that streams, then sends one message and
    waits for its confirm (an RPC caller after a burst) gets it at once."""
    q = uid()
    ch.queue_declare(q)
    with RawConn(amqp_port) as c:
        c.handshake()
        c.open_channel(1)
        c.send_method(1, 85, 10, b"\x00")  # confirm.select
        c.expect_method(85, 11, ch=1)
        c.send(publish_frames(q, b"s" * 4096) * 3000)
        acked_up_to(c, 3000, 10)
        t0 = time.monotonic()
        c.send(publish_frames(q, b"confirmed"))
        acked_up_to(c, 3001, 3)
        assert time.monotonic() - t0 < 2.0
