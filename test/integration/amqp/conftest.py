"""Fixtures for the AMQP integration tests.

  amqp_port   the AMQP port of the module's warrend (the `warren` fixture of
              ../conftest.py), once it accepts connections
  conn        a pika BlockingConnection to it, closed after the test
  ch          a channel of conn
"""

import socket
import time

import pytest


def wait_listening(port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def amqp_port(warren):
    if not wait_listening(warren.amqp_port):
        pytest.fail("warrend does not accept AMQP connections on port %d\n%s"
                    % (warren.amqp_port, warren.log_tail()), pytrace=False)
    return warren.amqp_port


@pytest.fixture
def conn(amqp_port):
    pika = pytest.importorskip("pika")
    import pikalib

    c = pika.BlockingConnection(pikalib.params(amqp_port))
    yield c
    if c.is_open:
        c.close()


@pytest.fixture
def ch(conn):
    return conn.channel()
