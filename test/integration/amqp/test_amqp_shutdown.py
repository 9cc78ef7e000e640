"""SIGTERM with AMQP consumers around: warrend exits 0 promptly (well within its 10 s drain).

A consumer on a channel with a channel-wide prefetch (basic.qos global=true, what
kombu and Celery send) is kept on claims, and an idle one parks a long-poll claim
(up to 15 s) in the core. That wait is not an in-flight write: it must not hold the
drain, whether its client is still there, cancelled the consumer, or vanished
without closing. Each test runs its own warrend (lib.warren.Warren).
"""

import os
import socket
import struct
import subprocess
import sys
import time
import uuid

import pytest

from rawamqp import RawConn, shortstr, table
import warren as wl

pika = pytest.importorskip("pika")

PROMPT_S = 2.0  # the drain would hold SIGTERM for 10 s


def stop_timed(w):
    """SIGTERM warrend; (exit status, seconds until it exited)."""
    t0 = time.monotonic()
    rc = w.stop()
    took = time.monotonic() - t0
    return rc, took


def assert_prompt_exit(w):
    rc, took = stop_timed(w)
    tail = w.log_tail(3000)
    w.cleanup()
    assert rc == 0, "warrend exit status %r\n%s" % (rc, tail)
    assert took < PROMPT_S, "warrend took %.1f s to exit after SIGTERM (drain held?)\n%s" % (
        took, tail)


def listening(port):
    with socket.socket() as sk:
        return sk.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def server():
    w = wl.Warren().start()
    # start() waits for the REST port; the AMQP listener may come a moment later
    deadline = time.monotonic() + 10
    while not listening(w.amqp_port) and time.monotonic() < deadline:
        time.sleep(0.05)
    yield w
    if w.proc and w.proc.poll() is None:  # a failed test: do not leave it running
        w.stop()
        w.cleanup()


def raw_global_qos_consumer(port, queue):
    """A raw connection with a global-prefetch consumer on an empty queue, whose claim
    is parked in the core once basic.consume-ok has come."""
    c = RawConn(port)
    c.handshake()
    c.open_channel(1)
    # queue.declare: reserved, name, bits (durable), arguments
    c.send_method(1, 50, 10, struct.pack(">H", 0) + shortstr(queue) + b"\x00" + table())
    c.expect_method(50, 11, ch=1)
    # basic.qos: prefetch_size 0, prefetch_count 4, global
    c.send_method(1, 60, 10, struct.pack(">IH", 0, 4) + b"\x01")
    c.expect_method(60, 11, ch=1)
    # basic.consume: reserved, queue, tag, bits (manual ack), arguments
    c.send_method(1, 60, 20, struct.pack(">H", 0) + shortstr(queue) + shortstr("t1") + b"\x00" +
                  table())
    c.expect_method(60, 21, ch=1)
    time.sleep(0.3)  # the first claim comes back empty at once, the next one parks
    return c


def test_sigterm_prompt_after_a_parked_consumer_vanished(server):
    c = raw_global_qos_consumer(server.amqp_port, "vanish-" + uuid.uuid4().hex[:8])
    c.close()  # no connection.close: the client is just gone
    time.sleep(0.3)
    assert_prompt_exit(server)


def test_sigterm_prompt_after_a_parked_consumer_cancelled(server):
    c = raw_global_qos_consumer(server.amqp_port, "cancel-" + uuid.uuid4().hex[:8])
    c.send_method(1, 60, 30, shortstr("t1") + b"\x00")  # basic.cancel
    c.expect_method(60, 31, ch=1)
    time.sleep(0.2)
    try:
        assert_prompt_exit(server)
    finally:
        c.close()


def test_sigterm_prompt_with_a_live_global_qos_consumer(server):
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        host="127.0.0.1", port=server.amqp_port, heartbeat=0))
    ch = conn.channel()
    q = "live-" + uuid.uuid4().hex[:8]
    ch.queue_declare(q)
    ch.basic_qos(prefetch_count=4, global_qos=True)
    ch.basic_consume(q, lambda *a: None)
    conn.process_data_events(time_limit=0.3)
    try:
        assert_prompt_exit(server)
    finally:
        try:
            conn.close()
        except Exception:
            pass


celery = None
try:
    import celery  # noqa: F811
except ImportError:
    pass


@pytest.mark.slow
@pytest.mark.skipif(celery is None, reason="python3-celery not installed")
def test_sigterm_prompt_after_a_celery_worker_ran_and_stopped(server, tmp_path):
    from test_celery import TASKS, stop_worker  # the Celery tests' task module

    (tmp_path / "wtasks.py").write_text(TASKS)
    env = dict(os.environ, WT_BROKER="amqp://guest:guest@127.0.0.1:%d//" % server.amqp_port,
               WT_QUEUE="celery-%s" % uuid.uuid4().hex[:12], PYTHONPATH=str(tmp_path))
    log = open(tmp_path / "worker.log", "w+")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "wtasks", "worker", "-P", "solo", "-l", "INFO",
         "-n", "w-%s@localhost" % uuid.uuid4().hex[:8]],
        cwd=str(tmp_path), env=env, stdout=log, stderr=subprocess.STDOUT)
    # the client: send a task and wait for its result, in a child process so that
    # every one of its connections is gone before warrend is stopped
    client = subprocess.run(
        [sys.executable, "-c", "import wtasks; print(wtasks.add.delay(2, 3).get(timeout=30))"],
        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=60)
    try:
        assert client.stdout.strip() == "5", client.stderr[-2000:]
    finally:
        stop_worker(worker, 15)
        log.close()
    time.sleep(0.3)
    assert_prompt_exit(server)
