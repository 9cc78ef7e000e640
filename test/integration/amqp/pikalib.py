"""Helpers the pika tests of this folder share (the fixtures are in conftest.py).

  uid(prefix)          a fresh name, so tests sharing a warrend never meet
  params(port, **kw)   pika.ConnectionParameters for the local warrend, short timeouts
  get_body(ch, q)      basic.get until a message comes: (method, properties, body),
                       or (None, None, None) after the timeout (deliveries cross
                       shards asynchronously)
"""

import time
import uuid


def uid(prefix="t"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:12])


def params(port, **kw):
    import pika  # here, so that importing this module needs no pika (importorskip)

    kw.setdefault("connection_attempts", 1)
    kw.setdefault("socket_timeout", 5)
    kw.setdefault("blocked_connection_timeout", 5)
    return pika.ConnectionParameters(host="127.0.0.1", port=port, **kw)


def get_body(ch, q, timeout=3.0, auto_ack=True):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m, p, b = ch.basic_get(q, auto_ack=auto_ack)
        if m is not None:
            return m, p, b
        time.sleep(0.02)
    return None, None, None
