"""OpenStack RPC and notifications over AMQP: oslo.messaging's rabbit driver (kombu /
py-amqp) against warrend, unchanged, as nova or neutron would use it.

RPC server (threading executor) + RPCClient call / cast, fanout cast to two servers, a
call to a topic nobody serves (MessagingTimeout), Notifier + notification listener.
Each test uses its own topic (uuid) and its own transport; servers are stopped and
waited, transports cleaned up, in finally blocks so nothing is left running.
"""

import threading
import time
import uuid

import pytest

oslo_messaging = pytest.importorskip("oslo_messaging")
oslo_config = pytest.importorskip("oslo_config.cfg")


def uid(prefix="t"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:12])


def make_conf(heartbeat=None):
    conf = oslo_config.ConfigOpts()
    conf([], project="warren-test")
    if heartbeat is not None:
        from oslo_messaging._drivers import impl_rabbit
        conf.register_opts(impl_rabbit.rabbit_opts, group="oslo_messaging_rabbit")
        conf.set_override("heartbeat_timeout_threshold", heartbeat,
                          group="oslo_messaging_rabbit")
    # oslo.messaging registers its metrics options only on the global cfg.CONF, yet the
    # RPC client reads them from the conf it is given
    from oslo_messaging._metrics import client as metrics_client
    conf.register_opts(metrics_client.oslo_messaging_metrics, group="oslo_messaging_metrics")
    # its (non-daemon) metrics send thread idles this long before it ends; the default 10 s
    # would hold up the interpreter's exit
    conf.set_override("metrics_thread_stop_timeout", 1, group="oslo_messaging_metrics")
    return conf


@pytest.fixture
def url(amqp_port):
    return "rabbit://guest:guest@127.0.0.1:%d/" % amqp_port


@pytest.fixture
def rpc_transport(url):
    t = oslo_messaging.get_rpc_transport(make_conf(), url=url)
    yield t
    t.cleanup()


class Endpoint:
    def __init__(self, name="s"):
        self.name = name
        self.casts = []
        self.cast_event = threading.Event()

    def add(self, ctxt, x, y):
        return x + y

    def whoami(self, ctxt):
        return self.name

    def record(self, ctxt, value):
        self.casts.append(value)
        self.cast_event.set()


class Servers:
    """Starts RPC servers; stop() stops and waits for all of them."""

    def __init__(self, transport):
        self.transport = transport
        self.servers = []

    def start(self, topic, endpoint, server_name=None):
        target = oslo_messaging.Target(topic=topic, server=server_name or uid("srv"))
        s = oslo_messaging.get_rpc_server(self.transport, target, [endpoint],
                                          executor="threading")
        self.servers.append(s)
        s.start()
        return s

    def stop(self):
        for s in self.servers:
            try:
                s.stop()
            except Exception:
                pass
        for s in self.servers:
            try:
                s.wait()
            except Exception:
                pass


@pytest.fixture
def servers(rpc_transport):
    s = Servers(rpc_transport)
    yield s
    s.stop()


def client(transport, topic, timeout=5, **kw):
    return oslo_messaging.get_rpc_client(transport, oslo_messaging.Target(topic=topic, **kw),
                                         timeout=timeout)


def test_rpc_call_returns_result(rpc_transport, servers):
    topic = uid("rpc")
    servers.start(topic, Endpoint())
    c = client(rpc_transport, topic)
    assert c.call({}, "add", x=2, y=3) == 5
    # a second call reuses the reply queue
    assert c.call({}, "add", x=40, y=2) == 42


def test_rpc_cast_runs_method(rpc_transport, servers):
    topic = uid("rpc")
    ep = Endpoint()
    servers.start(topic, ep)
    client(rpc_transport, topic).cast({}, "record", value="hello")
    assert ep.cast_event.wait(5), "cast never reached the server"
    assert ep.casts == ["hello"]


def test_rpc_fanout_cast_reaches_two_servers(rpc_transport, servers):
    topic = uid("rpc")
    a, b = Endpoint("a"), Endpoint("b")
    servers.start(topic, a, "server-a")
    servers.start(topic, b, "server-b")
    # both servers' fanout queues must be bound before the cast; a call to each server
    # (direct, by server name) proves each one is consuming
    assert client(rpc_transport, topic, server="server-a").call({}, "whoami") == "a"
    assert client(rpc_transport, topic, server="server-b").call({}, "whoami") == "b"
    client(rpc_transport, topic, fanout=True).cast({}, "record", value="all")
    assert a.cast_event.wait(5), "fanout cast did not reach server a"
    assert b.cast_event.wait(5), "fanout cast did not reach server b"
    assert a.casts == ["all"] and b.casts == ["all"]


def test_rpc_call_without_server_times_out(rpc_transport):
    c = client(rpc_transport, uid("nobody"), timeout=2)
    t0 = time.monotonic()
    with pytest.raises(oslo_messaging.MessagingTimeout):
        c.call({}, "add", x=1, y=1)
    elapsed = time.monotonic() - t0
    assert 1.5 <= elapsed < 6, elapsed


def test_rpc_idle_connections_survive_heartbeats(url, caplog):
    """With a 3 s heartbeat (negotiated in connection.tune), both the server's and the
    client's connections sit idle for several intervals: the broker must send heartbeats
    and accept the client's, so neither side drops or reconnects."""
    caplog.set_level("INFO", logger="oslo_messaging")
    transport = oslo_messaging.get_rpc_transport(make_conf(heartbeat=3), url=url)
    servers = Servers(transport)
    try:
        topic = uid("hb")
        servers.start(topic, Endpoint())
        c = client(transport, topic)
        assert c.call({}, "add", x=1, y=2) == 3
        time.sleep(8)
        assert c.call({}, "add", x=3, y=4) == 7
    finally:
        servers.stop()
        transport.cleanup()
    trouble = [r.getMessage() for r in caplog.records
               if r.levelno >= 30 or "reconnect" in r.getMessage().lower()
               or "heartbeat" in r.getMessage().lower()]
    assert trouble == []


class NotifyEndpoint:
    def __init__(self):
        self.got = []
        self.event = threading.Event()

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self.got.append((publisher_id, event_type, payload))
        self.event.set()


def test_notification_listener_receives_info(url):
    topic = uid("notif")
    transport = oslo_messaging.get_notification_transport(make_conf(), url=url)
    listener = None
    try:
        ep = NotifyEndpoint()
        listener = oslo_messaging.get_notification_listener(
            transport, [oslo_messaging.Target(topic=topic)], [ep], executor="threading")
        listener.start()
        notifier = oslo_messaging.Notifier(transport, publisher_id="compute.host1",
                                           driver="messaging", topics=[topic])
        notifier.info({}, "compute.instance.create.end", {"id": 7})
        assert ep.event.wait(5), "notification never reached the listener"
        assert ep.got == [("compute.host1", "compute.instance.create.end", {"id": 7})]
    finally:
        if listener is not None:
            listener.stop()
            listener.wait()
        transport.cleanup()
