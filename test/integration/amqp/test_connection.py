"""AMQP 0-9-1 connection and channel layer, with real clients (pika, py-amqp, kombu,
amqp-tools) and a byte-level client (rawamqp) for what real clients cannot send.

The connection layer: handshake, login, tune, heartbeats, channels and the protocol's
error replies. The messaging methods are tested in test_messaging.py.
"""

import shutil
import socket
import struct
import subprocess
import time

import pytest

from rawamqp import FRAME_BODY, FRAME_HEARTBEAT, PROTOCOL_HEADER, RawConn, shortstr

pika = pytest.importorskip("pika")
amqp = pytest.importorskip("amqp")


def pika_params(port, **kw):
    kw.setdefault("connection_attempts", 1)
    kw.setdefault("socket_timeout", 5)
    kw.setdefault("blocked_connection_timeout", 5)
    return pika.ConnectionParameters(host="127.0.0.1", port=port, **kw)


# --------------------------------------------------------------------------- pika

def test_pika_connect_channel_close(amqp_port):
    conn = pika.BlockingConnection(pika_params(amqp_port))
    try:
        props = conn._impl.server_properties
        assert props["product"] in (b"RabbitMQ", "RabbitMQ")
        caps = conn._impl.server_capabilities
        assert caps.get("authentication_failure_close") is True
        for cap in ("publisher_confirms", "basic.nack", "consumer_cancel_notify",
                    "exchange_exchange_bindings", "per_consumer_qos", "connection.blocked",
                    "consumer_priorities", "direct_reply_to"):
            assert caps.get(cap) is True, cap
        ch = conn.channel()
        assert ch.is_open
        ch2 = conn.channel()
        assert ch2.channel_number != ch.channel_number
        ch.close()
        assert ch.is_closed
        ch2.close()
    finally:
        conn.close()
    assert conn.is_closed


def test_pika_many_channels(amqp_port):
    conn = pika.BlockingConnection(pika_params(amqp_port))
    try:
        chans = [conn.channel() for _ in range(50)]
        assert all(c.is_open for c in chans)
        for c in chans:
            c.close()
    finally:
        conn.close()


def test_pika_channel_error_is_channel_level(amqp_port):
    conn = pika.BlockingConnection(pika_params(amqp_port))
    try:
        ch = conn.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
            ch.queue_declare("no-such-queue-q1", passive=True)
        assert ei.value.reply_code == 404
        # The connection survives a channel exception.
        assert conn.is_open
        ch2 = conn.channel()
        assert ch2.is_open
        ch2.close()
    finally:
        conn.close()


def test_pika_wrong_password(amqp_port):
    creds = pika.PlainCredentials("guest", "wrong")
    with pytest.raises((pika.exceptions.ProbableAuthenticationError,
                        pika.exceptions.AuthenticationError)):
        pika.BlockingConnection(pika_params(amqp_port, credentials=creds))


def test_pika_unknown_user(amqp_port):
    creds = pika.PlainCredentials("nobody", "guest")
    with pytest.raises((pika.exceptions.ProbableAuthenticationError,
                        pika.exceptions.AuthenticationError)):
        pika.BlockingConnection(pika_params(amqp_port, credentials=creds))


def test_pika_heartbeat_negotiated_and_kept(amqp_port):
    conn = pika.BlockingConnection(pika_params(amqp_port, heartbeat=1))
    try:
        assert conn._impl.params.heartbeat == 1
        # Longer than two intervals: both sides must send heartbeats to survive.
        conn.sleep(3.5)
        assert conn.is_open
        ch = conn.channel()
        assert ch.is_open
    finally:
        conn.close()


def test_pika_vhost_is_a_tenant(amqp_port):
    conn = pika.BlockingConnection(pika_params(amqp_port, virtual_host="tenant-x"))
    try:
        assert conn.channel().is_open
    finally:
        conn.close()


# ----------------------------------------------------------------- py-amqp, kombu

def test_py_amqp_amqplain(amqp_port):
    c = amqp.Connection(host="127.0.0.1:%d" % amqp_port, userid="guest", password="guest",
                        login_method="AMQPLAIN", connect_timeout=5)
    c.connect()
    try:
        assert c.server_properties["product"] == "RabbitMQ"
        ch = c.channel()
        assert ch.is_open
        ch.close()
    finally:
        c.close()


def test_py_amqp_default_mechanism(amqp_port):
    # py-amqp prefers AMQPLAIN over PLAIN when both are offered.
    c = amqp.Connection(host="127.0.0.1:%d" % amqp_port, connect_timeout=5)
    c.connect()
    try:
        assert c.channel().is_open
    finally:
        c.close()


def test_py_amqp_wrong_password(amqp_port):
    c = amqp.Connection(host="127.0.0.1:%d" % amqp_port, userid="guest", password="nope",
                        login_method="AMQPLAIN", connect_timeout=5)
    with pytest.raises(amqp.exceptions.AccessRefused):
        c.connect()


def test_py_amqp_not_implemented(amqp_port):
    # prefetch_size is not implemented (as in RabbitMQ): 540, a connection error.
    c = amqp.Connection(host="127.0.0.1:%d" % amqp_port, connect_timeout=5)
    c.connect()
    try:
        ch = c.channel()
        with pytest.raises(amqp.exceptions.AMQPNotImplementedError):
            ch.basic_qos(4096, 10, False)
    finally:
        try:
            c.close()
        except Exception:
            pass


def test_kombu_connect(amqp_port):
    kombu = pytest.importorskip("kombu")
    with kombu.Connection("amqp://guest:guest@127.0.0.1:%d//" % amqp_port,
                          connect_timeout=5) as conn:
        conn.connect()
        assert conn.connected
        ch = conn.channel()
        ch.close()


@pytest.mark.skipif(shutil.which("amqp-publish") is None, reason="amqp-tools not installed")
def test_amqp_tools_reach_publish(amqp_port):
    # rabbitmq-c logs in, opens a channel and publishes (to no queue: dropped).
    r = subprocess.run(["amqp-publish", "--url", "amqp://guest:guest@127.0.0.1:%d" % amqp_port,
                        "-r", "q", "-b", "hello"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr


# ------------------------------------------------------------------- byte level

def test_garbage_protocol_header(amqp_port):
    with RawConn(amqp_port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.recv_bytes(8) == PROTOCOL_HEADER
        assert c.recv_bytes(1) is None  # then the server closes


def test_old_protocol_version(amqp_port):
    with RawConn(amqp_port) as c:
        c.send(b"AMQP\x01\x01\x00\x09")
        assert c.recv_bytes(8) == PROTOCOL_HEADER
        assert c.recv_bytes(1) is None


def test_tune_proposal(amqp_port):
    with RawConn(amqp_port) as c:
        channel_max, frame_max, heartbeat = c.handshake()
        assert (channel_max, frame_max, heartbeat) == (2047, 131072, 60)


def test_channel_open_twice_is_504(amqp_port):
    with RawConn(amqp_port) as c:
        c.handshake()
        c.open_channel(1)
        c.send_method(1, 20, 10, shortstr(""))
        text = c.expect_close(504)
        assert "CHANNEL_ERROR" in text
        assert c.expect_eof() < 5


def test_unopened_channel_is_504(amqp_port):
    with RawConn(amqp_port) as c:
        c.handshake()
        c.send_method(7, 60, 10, struct.pack(">IHB", 0, 10, 0))  # basic.qos
        assert "channel.open" in c.expect_close(504)


def test_channel_above_channel_max_is_530(amqp_port):
    with RawConn(amqp_port) as c:
        c.handshake(channel_max=10)
        c.send_method(11, 20, 10, shortstr(""))
        c.expect_close(530)


def test_frame_bigger_than_frame_max_is_501(amqp_port):
    with RawConn(amqp_port) as c:
        c.handshake(frame_max=4096)
        c.open_channel(1)
        c.send_frame(FRAME_BODY, 1, b"x" * 5000)
        assert "frame_max" in c.expect_close(501)


def test_bad_frame_end_is_501(amqp_port):
    with RawConn(amqp_port) as c:
        c.handshake()
        c.send(struct.pack(">BHI", FRAME_HEARTBEAT, 0, 0) + b"\x00")
        c.expect_close(501)


def test_unknown_method_is_540_connection(amqp_port):
    with RawConn(amqp_port) as c:
        c.handshake()
        c.open_channel(1)
        c.send_method(1, 99, 1)
        c.expect_close(540)


def test_body_without_header_is_505(amqp_port):
    with RawConn(amqp_port) as c:
        c.handshake()
        c.open_channel(1)
        c.send_frame(FRAME_BODY, 1, b"abc")
        c.expect_close(505)


def test_channel_exception_then_close_ok(amqp_port):
    with RawConn(amqp_port) as c:
        c.handshake()
        c.open_channel(1)
        c.send_method(1, 90, 20)  # tx.commit on a channel that is not transactional
        args = c.expect_method(20, 40, ch=1)
        assert struct.unpack(">H", args[:2])[0] == 406
        c.send_method(1, 60, 10, struct.pack(">IHB", 0, 10, 0))  # dropped: channel closing
        c.send_method(1, 20, 41)  # close-ok
        c.open_channel(1)  # the id is free again


def test_client_connection_close(amqp_port):
    with RawConn(amqp_port) as c:
        c.handshake()
        c.open_channel(1)
        c.send_method(0, 10, 50, struct.pack(">H", 200) + shortstr("bye") +
                      struct.pack(">HH", 0, 0))
        c.expect_method(10, 51, ch=0)
        assert c.expect_eof() < 5


def test_wrong_password_without_capability_just_closes(amqp_port):
    with RawConn(amqp_port) as c:
        c.send(PROTOCOL_HEADER)
        c.expect_method(10, 10, ch=0)
        resp = b"\x00guest\x00nope"
        c.send_method(0, 10, 11, struct.pack(">I", 0) + shortstr("PLAIN") +
                      struct.pack(">I", len(resp)) + resp + shortstr("en_US"))
        assert c.recv_frame() is None


def test_server_sends_heartbeats(amqp_port):
    with RawConn(amqp_port) as c:
        c.handshake(heartbeat=2)
        t0 = time.monotonic()
        f = c.recv_frame(timeout=3)
        assert f is not None and f[0] == FRAME_HEARTBEAT and f[1] == 0
        assert time.monotonic() - t0 < 2.5


@pytest.mark.slow
def test_missed_heartbeats_close_the_connection(amqp_port):
    with RawConn(amqp_port) as c:
        c.handshake(heartbeat=1)
        # We never send anything: two intervals later the server hangs up.
        took = c.expect_eof(timeout=6)
        assert 1.5 <= took <= 4.5, took


@pytest.mark.slow
def test_handshake_timeout(amqp_port):
    with RawConn(amqp_port, timeout=15) as c:
        c.send(PROTOCOL_HEADER)
        c.expect_method(10, 10, ch=0)
        took = c.expect_eof(timeout=15)
        assert 8 <= took <= 13, took


def test_silent_client_is_dropped_at_handshake_timeout_only(amqp_port):
    # A connection that sends nothing keeps its socket (until the timeout), and
    # the server stays responsive to others meanwhile.
    idle = socket.create_connection(("127.0.0.1", amqp_port), timeout=5)
    try:
        conn = pika.BlockingConnection(pika_params(amqp_port))
        conn.close()
    finally:
        idle.close()


# ------------------------------------------------------------------- shutdown

def test_sigterm_with_open_connections():
    import warren as wl
    from conftest import wait_listening

    w = wl.Warren()
    try:
        w.start()
        assert wait_listening(w.amqp_port)
        conn = pika.BlockingConnection(pika_params(w.amqp_port))
        conn.channel()
        raw = RawConn(w.amqp_port)
        raw.handshake()
        assert w.stop() == 0, w.log_tail()
        # The broker says why before it goes: 320 CONNECTION_FORCED.
        raw.expect_close(320)
        raw.close()
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as ei:
            conn.process_data_events(time_limit=2)
        assert ei.value.reply_code == 320
    finally:
        w.stop()
        w.cleanup()
