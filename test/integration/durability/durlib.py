"""Helpers for the durability tests: a warrend on the rocksdb store, client
connections that survive a broker restart, and the ledger the crash tests keep.

  SANITIZED          True when WARREN_BIN is an ASan/UBSan build (slower: scale counts)
  scaled(n, asan)    n, or asan under a sanitizer build
  durable_warren()   lib.warren.Warren with --store rocksdb (+ extra args), not started
  has_flag(name)     warrend --help lists --name
  amqp_connect()     a pika BlockingConnection, retried until the broker accepts
  wait_for(pred)     poll a condition (never a bare sleep as synchronization)
  store_counters(w)  the unlabelled warren_store_* samples of w's GET /metrics
  Ledger             what clients saw: published, confirmed, delivered, acked; the checks
"""

import contextlib
import functools
import logging
import re
import subprocess
import threading
import time

import pika
import requests

import warren as wl

STORE_ARGS = ["--store", "rocksdb"]

# Reconnecting while the broker is down is the point here, not news.
logging.getLogger("pika").setLevel(logging.CRITICAL)


@functools.lru_cache(maxsize=None)
def _sanitized():
    try:
        with open(wl.warren_bin(), "rb") as f:
            data = f.read()
        return b"__asan_init" in data or b"__ubsan_handle" in data
    except OSError:
        return False


SANITIZED = _sanitized()


def scaled(n, asan):
    return asan if SANITIZED else n


@functools.lru_cache(maxsize=None)
def help_text():
    return subprocess.run([wl.warren_bin(), "--help"], capture_output=True, text=True,
                          timeout=10).stdout


def has_flag(name):
    return ("--" + name + " ") in help_text()


def durable_warren(extra_args=(), **kw):
    kw.setdefault("start_timeout", scaled(30.0, 120.0))
    return wl.Warren(extra_args=STORE_ARGS + list(extra_args), **kw)


def amqp_params(port, **kw):
    kw.setdefault("connection_attempts", 1)
    kw.setdefault("socket_timeout", 5)
    kw.setdefault("blocked_connection_timeout", 10)
    kw.setdefault("heartbeat", 0)
    return pika.ConnectionParameters(host="127.0.0.1", port=port, **kw)


def amqp_connect(port, stop=None, timeout=60.0):
    """A BlockingConnection; retried while the broker is down (stop: an Event to give up)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return pika.BlockingConnection(amqp_params(port))
        except pika.exceptions.AMQPError:
            if (stop is not None and stop.is_set()) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def close_quietly(conn):
    try:
        if conn is not None and conn.is_open:
            conn.close()
    except Exception:  # noqa: BLE001 - the broker may be gone mid-close
        pass


def wait_for(pred, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError("timed out after %.0f s waiting for %s" % (timeout, what))


_STORE_SAMPLE = re.compile(r"^(warren_store_[a-z_]+) (\d+)$", re.M)


def store_counters(w):
    """{name: int} of the store's series in w's /metrics (they have no labels)."""
    r = requests.get(w.url + "/metrics", timeout=10)
    assert r.status_code == 200, wl.describe(r)
    return {m.group(1): int(m.group(2)) for m in _STORE_SAMPLE.finditer(r.text)}


class Ledger:
    """What the clients saw, across every broker restart.

    Ids are strings "<publisher>:<n>", unique per publish attempt. Times are
    time.monotonic() in this process, so threads' events can be ordered.

      attempted   ids a publisher sent (confirmed or not: the broker may have it)
      confirmed   id -> (queue, send time): positively confirmed (AMQP ack, REST 201)
      deliveries  (id, queue, redelivered, receive time, epoch) in arrival order
      acked       id -> time the ack was known to be processed
      crashes     time just before each kill -9, in order (epoch e ends there)
      killed      time just after each kill -9 returned (the process is gone)
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.attempted = set()
        self.confirmed = {}
        self.deliveries = []
        self.acked = {}
        self.crashes = []
        self.killed = []
        self.epoch = 0
        self.errors = []
        self.after_clean_restart = None

    def attempt(self, mid):
        with self.lock:
            self.attempted.add(mid)

    def confirm(self, mid, queue, sent_at):
        with self.lock:
            self.confirmed[mid] = (queue, sent_at)

    def deliver(self, mid, queue, redelivered):
        with self.lock:
            self.deliveries.append((mid, queue, redelivered, time.monotonic(), self.epoch))

    def ack(self, mids):
        now = time.monotonic()
        with self.lock:
            for m in mids:
                self.acked.setdefault(m, now)

    def crash(self):
        with self.lock:
            self.crashes.append(time.monotonic())
            self.epoch += 1

    def crash_done(self):
        with self.lock:
            self.killed.append(time.monotonic())

    def error(self, text):
        with self.lock:
            self.errors.append(text)

    # -- the checks ---------------------------------------------------------

    def summary(self):
        seen = {d[0] for d in self.deliveries}
        return ("attempted %d, confirmed %d, deliveries %d (distinct %d, redelivered flag %d), "
                "acked %d, crashes %d" % (len(self.attempted), len(self.confirmed),
                                           len(self.deliveries), len(seen),
                                           sum(1 for d in self.deliveries if d[2]),
                                           len(self.acked), len(self.crashes)))

    def history(self, mid):
        """One message's story, for failure messages (times relative to the first crash)."""
        t0 = self.crashes[0] if self.crashes else 0.0
        ev = ["crashes at %s" % ["%.3f" % (c - t0) for c in self.crashes]]
        if mid in self.confirmed:
            ev.append("sent %.3f to %s, confirmed" % (self.confirmed[mid][1] - t0,
                                                      self.confirmed[mid][0]))
        ev += ["delivered %.3f epoch %d redelivered=%s" % (at - t0, e, r)
               for m, _, r, at, e in self.deliveries if m == mid]
        if mid in self.acked:
            ev.append("ack processed %.3f" % (self.acked[mid] - t0))
        return "%s: %s" % (mid, "; ".join(ev))

    def lost(self):
        """Confirmed messages never delivered."""
        seen = {d[0] for d in self.deliveries}
        return sorted(set(self.confirmed) - seen)

    def forged(self):
        """Delivered messages no publisher sent."""
        return sorted({d[0] for d in self.deliveries} - self.attempted)

    def _confirm_times(self):
        by_q = {}
        for mid, (q, sent) in self.confirmed.items():
            by_q.setdefault(q, []).append(sent)
        return by_q

    def acked_then_delivered(self, certain_only=False):
        """(id, epoch) of deliveries after the message's ack was processed.

        certain_only: count only acks that are certainly in the store: a
        publish to the same queue sent after the ack point was confirmed
        before the next crash (the store keeps a shard's writes in order).
        """
        conf = self._confirm_times()
        out = []
        for mid, q, _, at, epoch in self.deliveries:
            acked_at = self.acked.get(mid)
            if acked_at is None or at <= acked_at:
                continue
            if certain_only:
                # the kill that may have lost the delete: the first one to
                # finish after the ack; a confirm must be sent in between
                k = next((i for i, t in enumerate(self.killed) if t > acked_at), None)
                end = self.crashes[k] if k is not None else float("inf")
                if not any(acked_at < s < end for s in conf.get(q, ())):
                    continue
            out.append((mid, epoch))
        return out

    def unflagged_redeliveries(self):
        """Redeliveries after a crash that must carry the flag and do not.

        A first delivery writes its mark without waiting, so only a mark that
        is certainly in the store counts: one followed, on the same queue, by
        a publish sent after the delivery arrived and confirmed before the
        crash (the store keeps a shard's writes in order, so that confirm
        means the mark is written too).
        """
        conf_by_q = self._confirm_times()
        first = {}
        bad = []
        for mid, q, redel, at, epoch in self.deliveries:
            if mid not in first:
                first[mid] = (at, epoch)
                continue
            at0, e0 = first[mid]
            if redel or epoch == e0:
                continue
            crash_at = self.crashes[e0]
            # a publish on q sent after at0 and confirmed before crash_at: its
            # send time is in (at0, crash_at) and it is in confirmed (the
            # confirm arrived before the kill, or the connection would have
            # failed it)
            if any(at0 < s < crash_at for s in conf_by_q.get(q, ())):
                bad.append(mid)
        return bad


def crash_loop(w, ledger, cycles, seconds, min_confirms):
    """kill -9 and restart w `cycles` times, each after at least `seconds` of
    load and `min_confirms` new confirms (clients run on their own threads)."""
    for cycle in range(cycles):
        before = len(ledger.confirmed)
        t0 = time.monotonic()
        wait_for(lambda: time.monotonic() - t0 >= seconds and
                 len(ledger.confirmed) - before >= min_confirms,
                 scaled(60, 180), "%d confirms in cycle %d (%s)\n%s"
                 % (min_confirms, cycle, ledger.summary(), w.log_tail()))
        ledger.crash()
        w.kill()
        ledger.crash_done()
        w.start()


def ids_list(pairs, limit=10):
    return ", ".join("%s (epoch %d)" % p for p in pairs[:limit])


@contextlib.contextmanager
def amqp_channel(port):
    """A channel on a fresh connection, closed (quietly) at the end."""
    conn = amqp_connect(port)
    try:
        yield conn.channel()
    finally:
        close_quietly(conn)


def crash_run(w, ledger, publishers, stop_pub, consumers, counts, cycles, seconds, min_confirms):
    """The crash tests' whole run on a started w: start the client threads,
    kill -9 and restart `cycles` times, stop the publishers, let the
    consumers (objects with .thread, .stop and .drained()) drain until
    counts() (messages left per queue) is all zeros, then stop cleanly and
    start again: ledger.after_clean_restart = counts() there."""
    for t in publishers + [c.thread for c in consumers]:
        t.start()
    crash_loop(w, ledger, cycles, seconds, min_confirms)
    stop_pub.set()
    for t in publishers:
        t.join(30)
    assert not any(t.is_alive() for t in publishers), "a publisher did not stop"
    wait_for(lambda: not any(counts()) and all(c.drained() for c in consumers),
             scaled(60, 180), "the consumers to drain the queues (%s)" % ledger.summary())
    for c in consumers:
        c.stop.set()
    for c in consumers:
        c.thread.join(30)
    assert not any(c.thread.is_alive() for c in consumers), "a consumer did not stop"
    print(ledger.summary())
    # Acks made before a clean stop stay made.
    assert w.stop() == 0, w.log_tail()
    w.start()
    ledger.after_clean_restart = counts()
    assert w.stop() == 0, w.log_tail()


def crash_teardown(w, stop_pub, consumers):
    stop_pub.set()
    for c in consumers:
        c.stop.set()
    w.kill()
    w.cleanup()
