"""TLS for both protocols (issue 5, point 4): --https and --amqps with --tls-cert/--tls-key.

A CA and a server certificate for 127.0.0.1 are made at test time (tlslib, the openssl
command). Clients verify the server against that CA: requests over HTTPS, pika with
SSLOptions and py-amqp with an SSL context over AMQPS. Also: a client trusting another
CA refuses the server, TLS 1.1 is refused, plain AMQP or HTTP on a TLS port fails cleanly
(the server stays up), and warrend refuses to start with a TLS listener but no usable
certificate.
"""

import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import warnings

import pytest
import requests

import tlslib
import warren as wl

pika = pytest.importorskip("pika")
amqp = pytest.importorskip("amqp")


@pytest.fixture(scope="module")
def certs():
    d = tempfile.mkdtemp(prefix="warren-tls-")
    yield tlslib.make_ca_and_cert(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def tls(certs):
    https, amqps = wl.free_port(), wl.free_port()
    w = wl.Warren(extra_args=["--https", "127.0.0.1:%d" % https, "--amqps",
                              "127.0.0.1:%d" % amqps, "--tls-cert", certs["cert"],
                              "--tls-key", certs["key"]])
    w.start()
    w.https_port, w.amqps_port, w.ca = https, amqps, certs["ca"]
    yield w
    rc = w.stop()
    tail = w.log_tail()
    w.cleanup()
    assert rc == 0, tail


def ctx_for(cafile):
    c = ssl.create_default_context(cafile=cafile)
    c.check_hostname = False  # the certificate names 127.0.0.1; pika passes no name
    return c


def hdrs():
    return wl.headers(project="tls-" + wl.new_client_id()[:8])


def test_https_publish_and_read(tls, certs):
    base = "https://127.0.0.1:%d" % tls.https_port
    h = hdrs()
    r = requests.put(base + "/v2/queues/tq", headers=h, json={}, verify=certs["ca"], timeout=10)
    assert r.status_code in (201, 204), r.text
    r = requests.post(base + "/v2/queues/tq/messages", headers=h, verify=certs["ca"],
                      json={"messages": [{"body": {"over": "tls"}, "ttl": 300}]}, timeout=10)
    assert r.status_code == 201, r.text
    r = requests.get(base + "/v2/queues/tq/messages?echo=true", headers=h, verify=certs["ca"],
                     timeout=10)
    assert r.status_code == 200 and r.json()["messages"][0]["body"] == {"over": "tls"}
    # plain HTTP goes on beside it
    assert requests.get(tls.url + "/v2/ping", headers=h, timeout=10).status_code == 204


def test_https_wrong_ca_is_refused_by_the_client(tls, certs):
    with pytest.raises(requests.exceptions.SSLError):
        requests.get("https://127.0.0.1:%d/v2/ping" % tls.https_port, headers=hdrs(),
                     verify=certs["other_ca"], timeout=10)


def tls_handshake(port, cafile, **ctx_attrs):
    c = ctx_for(cafile)
    for k, v in ctx_attrs.items():
        setattr(c, k, v)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with c.wrap_socket(s) as t:
            return t.version()


@pytest.mark.parametrize("which", ["https_port", "amqps_port"])
def test_tls12_plus_only(tls, certs, which):
    port = getattr(tls, which)
    assert tls_handshake(port, certs["ca"]) in ("TLSv1.2", "TLSv1.3")
    assert tls_handshake(port, certs["ca"], maximum_version=ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # asking for TLS 1.1 on purpose
            tls_handshake(port, certs["ca"], minimum_version=ssl.TLSVersion.TLSv1,
                          maximum_version=ssl.TLSVersion.TLSv1_1)


def test_amqps_pika_publish_consume(tls, certs):
    params = pika.ConnectionParameters(
        host="127.0.0.1", port=tls.amqps_port,
        ssl_options=pika.SSLOptions(ctx_for(certs["ca"])),
        credentials=pika.PlainCredentials("guest", "guest"))
    conn = pika.BlockingConnection(params)
    try:
        ch = conn.channel()
        ch.queue_declare("tls-q", auto_delete=False)
        ch.confirm_delivery()
        for i in range(100):
            ch.basic_publish("", "tls-q", b"m%d" % i + b"x" * (i * 500))
        got = []
        for method, props, body in ch.consume("tls-q", inactivity_timeout=5):
            if method is None:
                break
            got.append(body)
            ch.basic_ack(method.delivery_tag)
            if len(got) == 100:
                break
        ch.cancel()
        assert [b[:4].rstrip(b"x") for b in got[:3]] == [b"m0", b"m1", b"m2"]
        assert len(got) == 100 and got[99] == b"m99" + b"x" * 49500
        ch.queue_delete("tls-q")
    finally:
        conn.close()


def test_amqps_py_amqp(tls, certs):
    c = amqp.Connection(host="127.0.0.1:%d" % tls.amqps_port, userid="guest", password="guest",
                        ssl={"ca_certs": certs["ca"], "cert_reqs": ssl.CERT_REQUIRED})
    c.connect()
    try:
        ch = c.channel()
        ch.queue_declare("tls-py", auto_delete=True)
        ch.basic_publish(amqp.Message(b"hello tls"), routing_key="tls-py")
        deadline = time.time() + 5
        m = None
        while m is None and time.time() < deadline:
            m = ch.basic_get("tls-py", no_ack=True)
        assert m is not None and m.body == b"hello tls"
    finally:
        c.close()


def test_amqps_wrong_ca_is_refused_by_the_client(tls, certs):
    params = pika.ConnectionParameters(host="127.0.0.1", port=tls.amqps_port,
                                       ssl_options=pika.SSLOptions(ctx_for(certs["other_ca"])),
                                       connection_attempts=1)
    with pytest.raises((pika.exceptions.AMQPConnectionError, ssl.SSLError)):
        pika.BlockingConnection(params)


def test_plain_amqp_on_the_tls_port_fails_cleanly(tls):
    with socket.create_connection(("127.0.0.1", tls.amqps_port), timeout=5) as s:
        s.sendall(b"AMQP\x00\x00\x09\x01")
        t0 = time.time()
        data = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass
        assert time.time() - t0 < 3  # closed at once, not at the handshake timeout
        assert not data.startswith(b"AMQP")
    # the plain port and the TLS port still work
    pika.BlockingConnection(pika.ConnectionParameters(host="127.0.0.1",
                                                      port=tls.amqp_port)).close()
    assert tls_handshake(tls.amqps_port, tls.ca)


def test_plain_http_on_the_https_port_fails_cleanly(tls, certs):
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get("http://127.0.0.1:%d/v2/ping" % tls.https_port, headers=hdrs(), timeout=5)
    r = requests.get("https://127.0.0.1:%d/v2/ping" % tls.https_port, headers=hdrs(),
                     verify=certs["ca"], timeout=10)
    assert r.status_code == 204


@pytest.mark.parametrize("flags", [
    ["--https", "127.0.0.1:%(p)d"],                                   # no certificate at all
    ["--amqps", "127.0.0.1:%(p)d", "--tls-cert", "%(cert)s", "--tls-key", "%(other)s"],
    ["--https", "127.0.0.1:%(p)d", "--tls-cert", "%(cert)s", "--tls-key", "/nonexistent"],
])
def test_bad_tls_settings_refuse_to_start(certs, flags, tmp_path):
    other_key = os.path.join(os.path.dirname(certs["other_ca"]), "other-ca.key")
    args = [f % {"p": wl.free_port(), "cert": certs["cert"], "other": other_key} for f in flags]
    argv = [wl.warren_bin(), "--data", str(tmp_path / "d"), "--store", "memory",
            "--http", "127.0.0.1:%d" % wl.free_port(), "--amqp", "127.0.0.1:%d" % wl.free_port()]
    r = subprocess.run(argv + args, capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
