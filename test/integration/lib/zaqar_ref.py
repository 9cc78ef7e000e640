"""Run OpenStack Zaqar itself (Debian zaqar-server, Redis store) as a stand-in for warrend,
to check that the REST tests assert what the reference implementation does.

    WARREN_TARGET=zaqar /usr/bin/python3 -m pytest test/integration/rest

Needs zaqar-server, python3-redis and redis-server (see /work/shared/bench/rest/README.md
for the Lua scripts Debian's package lacks). Zaqar-only gaps are expected: warren's
extensions (long-poll `wait`, /metrics) fail there, and the one-process wsgiref server is
too slow for the concurrency test. Same interface as warren.Warren.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time

import requests

from warren import free_port, headers, WarrenError

CONF = """[DEFAULT]
auth_strategy =
unreliable = true
admin_mode = true

[drivers]
message_store = redis
management_store = redis

[drivers:message_store:redis]
uri = redis://127.0.0.1:{redis}

[drivers:management_store:redis]
uri = redis://127.0.0.1:{redis}

[drivers:transport:wsgi]
bind = 127.0.0.1
port = {http}

[signed_url]
secret_key = integration-tests
"""


class ZaqarRef:
    def __init__(self):
        self.tmpdir = tempfile.mkdtemp(prefix="zaqar-ref-")
        self.http_port = None
        self.redis = None
        self.proc = None
        self.returncode = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.http_port

    def log_tail(self, limit=8000):
        p = os.path.join(self.tmpdir, "zaqar.log")
        if not os.path.exists(p):
            return ""
        with open(p, "rb") as f:
            return f.read()[-limit:].decode("utf-8", "replace")

    def start(self):
        rport = free_port()
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.tmpdir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.http_port = free_port()
        conf = os.path.join(self.tmpdir, "zaqar.conf")
        with open(conf, "w") as f:
            f.write(CONF.format(redis=rport, http=self.http_port))
        log = open(os.path.join(self.tmpdir, "zaqar.log"), "wb")
        self.proc = subprocess.Popen(["/usr/bin/python3", "/usr/bin/zaqar-server",
                                      "--config-file", conf],
                                     stdout=log, stderr=subprocess.STDOUT, cwd=self.tmpdir)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise WarrenError("zaqar-server exited\n" + self.log_tail())
            try:
                requests.get(self.url + "/v2/ping", headers=headers("x"), timeout=2)
                return self
            except requests.RequestException:
                time.sleep(0.2)
        self.stop()
        raise WarrenError("zaqar-server did not start\n" + self.log_tail())

    def stop(self):
        for p in (self.proc, self.redis):
            if p and p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.kill(p.pid, signal.SIGKILL)
                    p.wait()
        # the reference's exit status is not under test
        self.returncode = 0
        return 0

    def cleanup(self):
        shutil.rmtree(self.tmpdir, ignore_errors=True)
