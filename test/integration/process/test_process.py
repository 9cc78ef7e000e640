"""The process contract of DESIGN.md as an operator meets it: flags, --help,
the config file, the data-dir lock, busy ports and SIGTERM.

Each test starts its own warrend (lib/warren.py) and stops it by pid.
"""

import os
import signal
import socket
import subprocess
import tempfile
import time

import pytest
import requests

import warren as wl

CONTRACT_FLAGS = ["--config", "--amqp", "--http", "--data", "--shards", "--zone",
                  "--etcd", "--log-level"]


def run(args, timeout=10):
    return subprocess.run([wl.warren_bin()] + args, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def test_help_lists_every_contract_flag():
    r = run(["--help"])
    assert r.returncode == 0
    for flag in CONTRACT_FLAGS:
        assert flag in r.stdout, "--help does not mention %s" % flag


def test_unknown_flag_is_refused_with_one_line():
    r = run(["--no-such-flag"])
    assert r.returncode != 0
    assert "no-such-flag" in r.stderr


def test_bad_value_is_refused():
    r = run(["--shards", "-3"])
    assert r.returncode != 0
    assert "shards" in r.stderr


def test_config_file_is_read_and_flags_override_it():
    http_file, http_flag, amqp = wl.free_port(), wl.free_port(), wl.free_port()
    with tempfile.TemporaryDirectory() as d:
        conf = os.path.join(d, "warren.conf")
        with open(conf, "w") as f:
            f.write("[warren]\nhttp = 127.0.0.1:%d\namqp = 127.0.0.1:%d\ndata = %s\nshards = 1\n"
                    % (http_file, amqp, os.path.join(d, "data")))
        # The file alone: REST listens where the file says.
        p = subprocess.Popen([wl.warren_bin(), "--config", conf], cwd=d,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            assert wait_http(http_file), "warrend did not listen on the config file's port"
        finally:
            p.send_signal(signal.SIGTERM)
            assert p.wait(20) == 0
        # A flag overrides the file.
        p = subprocess.Popen([wl.warren_bin(), "--config", conf, "--http",
                              "127.0.0.1:%d" % http_flag], cwd=d,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            assert wait_http(http_flag), "--http did not override the config file"
            assert not port_open(http_file)
        finally:
            p.send_signal(signal.SIGTERM)
            assert p.wait(20) == 0


def test_unknown_config_key_is_refused():
    with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
        f.write("[warren]\nno_such_key = 1\n")
        f.flush()
        r = run(["--config", f.name])
        assert r.returncode != 0
        assert "no_such_key" in r.stderr


@pytest.mark.parametrize("store", ["memory", "rocksdb"])
def test_second_broker_on_the_same_data_dir_is_refused(store):
    with wl.Warren(extra_args=["--store", store]) as w:
        api = wl.Api(w.url)
        api.create_queue("kept", {"_durable": True})
        api.post_bodies("kept", ["before"])
        r = run(["--store", store, "--data", w.data_dir,
                 "--http", "127.0.0.1:%d" % wl.free_port(),
                 "--amqp", "127.0.0.1:%d" % wl.free_port()])
        assert r.returncode != 0
        assert "in use by another warrend" in r.stderr
        # The first one is unharmed, and so is what it stores.
        assert requests.get(w.url + "/v2/ping", headers=wl.headers("p"), timeout=5).status_code == 204
        api.post_bodies("kept", ["after"])
        if store == "rocksdb":
            assert w.stop() == 0
            w.start()
        c = api.claim("kept", limit=10)
        assert c.status_code == 201, wl.describe(c)
        assert [m["body"] for m in c.json()["messages"]] == ["before", "after"]


def test_busy_port_is_refused():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    try:
        with tempfile.TemporaryDirectory() as d:
            r = run(["--data", d, "--http", "127.0.0.1:%d" % s.getsockname()[1],
                     "--amqp", "127.0.0.1:%d" % wl.free_port()])
        assert r.returncode != 0
        assert "http" in r.stderr.lower()
    finally:
        s.close()


def test_sigterm_exits_0_and_releases_the_lock():
    w = wl.Warren().start()
    data = w.data_dir
    assert w.stop() == 0
    # The lock is gone with the process: a new broker starts on the same data dir.
    w2 = wl.Warren(extra_args=["--data", data])
    try:
        w2.start()
        assert requests.get(w2.url + "/v2/ping", headers=wl.headers("p"), timeout=5).status_code == 204
    finally:
        assert w2.stop() == 0
        w2.cleanup()
    w.cleanup()


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def wait_http(port, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get("http://127.0.0.1:%d/v2/ping" % port, headers=wl.headers("p"), timeout=1)
            return True
        except requests.RequestException:
            time.sleep(0.05)
    return False
