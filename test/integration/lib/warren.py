"""Start and stop a real warrend for integration tests, plus small HTTP helpers.

Layout:
  free_port()          a loopback port nobody listens on (bind port 0, read it, close)
  Warren               one warrend process: start() on free ports with a fresh --data dir
                       (or the given data_dir), wait for GET /v2/ping, stop() by pid with
                       SIGTERM -> exit status, kill() by pid with SIGKILL; start() again
                       after stop()/kill() restarts on the same ports and data dir
  headers()            Zaqar request headers: X-Project-Id + a random Client-ID UUID
  Api                  a requests.Session bound to one base URL, project and Client-ID
  assert_error()       a 4xx reply with a Zaqar JSON error body ("title"/"description")
  assert_alive()       the server still answers GET /v2/ping with 204
  rss(pid)             a process's resident set size in bytes (/proc, as ps reads it)
  is_asan(binary)      the binary is a sanitizer build (its RSS says little)

The binary comes from $WARREN_BIN (default build/warrend under the repo root), so the
same suite runs against the sanitizer build: a non-zero exit status at SIGTERM (ASan,
UBSan, a crash) is reported by stop() and fails the session.
"""

import os
import shutil
import signal
import random
import socket
import subprocess
import tempfile
import time
import uuid

import requests

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
START_TIMEOUT = 20.0
STOP_TIMEOUT = 20.0
HTTP_TIMEOUT = 30.0


def warren_bin():
    path = os.environ.get("WARREN_BIN", os.path.join(REPO_ROOT, "build", "warrend"))
    if not os.path.isabs(path):
        path = os.path.join(REPO_ROOT, path)
    return path


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


_port_rng = random.Random()


def free_port():
    """A loopback port free now, below the kernel's ephemeral range: a test
    that restarts warrend on the same port (the crash loops) must not find
    it taken meanwhile by the local end of one of its own client connections,
    which a port from bind(0) (an ephemeral one) can be."""
    lo, _ = _ephemeral_range()
    top = lo - 1 if lo > 11000 else 30999
    for _ in range(200):
        port = _port_rng.randint(10000, top)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise RuntimeError("no free loopback port below %d" % top)


class WarrenError(RuntimeError):
    pass


def start_or_fail(w):
    """Starts w; a warrend that does not come up fails the calling test with
    its log (pytest.fail), after removing its temp dir. Returns w."""
    import pytest

    try:
        w.start()
    except WarrenError as e:
        w.cleanup()
        pytest.fail(str(e), pytrace=False)
    return w


def stop_and_check(w):
    """SIGTERM, remove the temp dir, and assert the exit status is 0."""
    rc = w.stop()
    tail = w.log_tail()
    w.cleanup()
    assert rc == 0, "warrend exit status at SIGTERM was %r (expected 0)\n%s" % (rc, tail)


class Warren:
    """One warrend process on loopback. Use start()/stop() or a with-block."""

    def __init__(self, binary=None, shards=None, extra_args=(), data_dir=None,
                 start_timeout=START_TIMEOUT):
        self.binary = binary or warren_bin()
        self.shards = shards
        self.extra_args = list(extra_args)
        self.start_timeout = start_timeout
        self.proc = None
        self.http_port = None
        self.amqp_port = None
        self.tmpdir = None
        self.data_dir = data_dir
        self.stderr_path = None
        self.stdout_path = None
        self.returncode = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.http_port

    def log_tail(self, limit=8000):
        out = []
        for label, path in (("stderr", self.stderr_path), ("stdout", self.stdout_path)):
            if path and os.path.exists(path):
                with open(path, "rb") as f:
                    data = f.read()
                text = data[-limit:].decode("utf-8", "replace")
                out.append("--- warrend %s (last %d bytes) ---\n%s" % (label, limit, text))
        return "\n".join(out)

    def start(self, wait=True):
        """Starts warrend; with wait, until it answers GET /v2/ping."""
        if not os.access(self.binary, os.X_OK):
            raise WarrenError("warrend binary not found or not executable: %s "
                              "(build it or set WARREN_BIN)" % self.binary)
        if self.proc is None:
            self._first_start()
        argv = self.argv()
        # A restart appends to the same logs, so log_tail() tells the whole story.
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(argv, cwd=self.tmpdir, env=self._env(),
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        if wait:
            self._wait_ready(argv)
        return self

    def _first_start(self):
        self.tmpdir = tempfile.mkdtemp(prefix="warren-it-")
        if self.data_dir is None:
            self.data_dir = os.path.join(self.tmpdir, "data")
            os.mkdir(self.data_dir)
        self.stderr_path = os.path.join(self.tmpdir, "stderr.log")
        self.stdout_path = os.path.join(self.tmpdir, "stdout.log")
        # Ports are picked just before the first exec and kept for restarts; a rare
        # race with another process grabbing one shows up as a startup failure.
        self.http_port = free_port()
        self.amqp_port = free_port()
        while self.amqp_port == self.http_port:
            self.amqp_port = free_port()

    def argv(self):
        argv = [self.binary,
                "--http", "127.0.0.1:%d" % self.http_port,
                "--amqp", "127.0.0.1:%d" % self.amqp_port,
                "--data", self.data_dir]
        if self.shards:
            argv += ["--shards", str(self.shards)]
        return argv + self.extra_args

    @staticmethod
    def _env():
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        return env

    def _wait_ready(self, argv):
        deadline = time.monotonic() + self.start_timeout
        last = None
        hdrs = headers("warren-it-startup")
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                self.returncode = rc
                raise WarrenError("warrend exited with status %d during startup\nargv: %s\n%s"
                                  % (rc, " ".join(argv), self.log_tail()))
            try:
                r = requests.get(self.url + "/v2/ping", headers=hdrs, timeout=2)
                # Any HTTP answer means the listener is up; whether ping itself is
                # right (204) is asserted by the tests, not here.
                last = r.status_code
                return
            except requests.RequestException as e:
                last = e
            time.sleep(0.05)
        self._kill()
        raise WarrenError("warrend did not answer GET /v2/ping within %.0f s (last: %r)\n"
                          "argv: %s\n%s" % (self.start_timeout, last, " ".join(argv), self.log_tail()))

    def _kill(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def kill(self):
        """SIGKILL by pid (a crash: nothing is flushed); returns the exit status."""
        self._kill()
        self.returncode = self.proc.returncode if self.proc else None
        return self.returncode

    def stop(self):
        """SIGTERM by pid; returns the exit status (None if never started)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._kill()
                self.returncode = "timeout"
                return self.returncode
        self.returncode = self.proc.returncode
        return self.returncode

    def cleanup(self):
        if self.tmpdir and os.environ.get("WARREN_KEEP_DATA") is None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        self.cleanup()


# ---------------------------------------------------------------------------
# HTTP helpers


def new_client_id():
    return str(uuid.uuid4())


def new_project():
    return "proj-" + uuid.uuid4().hex[:12]


def headers(project="p1", client_id=None, **extra):
    h = {"X-Project-Id": project, "Client-ID": client_id or new_client_id()}
    h.update(extra)
    return h


class Api:
    """A requests.Session bound to one server, project and Client-ID.

    Paths are relative to the server root ("/v2/queues/q"); absolute URLs are used
    as given, so hrefs and Location headers the server returns can be followed.
    """

    def __init__(self, base, project=None, client_id=None):
        self.base = base.rstrip("/")
        self.project = project or new_project()
        self.client_id = client_id or new_client_id()
        self.session = requests.Session()

    def headers(self, extra=None):
        h = {"X-Project-Id": self.project, "Client-ID": self.client_id}
        if extra:
            h.update(extra)
        return h

    def url(self, path):
        if path.startswith("http://") or path.startswith("https://"):
            return path
        return self.base + path

    def request(self, method, path, headers=None, timeout=HTTP_TIMEOUT, **kw):
        return self.session.request(method, self.url(path), headers=self.headers(headers),
                                    timeout=timeout, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def patch(self, path, **kw):
        return self.request("PATCH", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def head(self, path, **kw):
        return self.request("HEAD", path, **kw)

    # Common operations, each asserting its documented success status.

    def create_queue(self, name, metadata=None):
        r = self.put("/v2/queues/" + name, json=metadata) if metadata is not None \
            else self.put("/v2/queues/" + name)
        assert r.status_code in (201, 204), describe(r)
        return r

    def post_messages(self, queue, messages):
        r = self.post("/v2/queues/%s/messages" % queue, json={"messages": messages})
        assert r.status_code == 201, describe(r)
        return [href.rsplit("/", 1)[-1] for href in r.json()["resources"]]

    def post_bodies(self, queue, bodies, ttl=None):
        msgs = [{"body": b} if ttl is None else {"body": b, "ttl": ttl} for b in bodies]
        return self.post_messages(queue, msgs)

    def claim(self, queue, limit=None, ttl=300, grace=60):
        params = {} if limit is None else {"limit": limit}
        return self.post("/v2/queues/%s/claims" % queue, params=params,
                         json={"ttl": ttl, "grace": grace})

    def stats(self, queue):
        r = self.get("/v2/queues/%s/stats" % queue)
        assert r.status_code == 200, describe(r)
        return r.json()["messages"]


def describe(r):
    """One line about a response, for assertion messages."""
    body = r.content[:500].decode("utf-8", "replace") if r.content else ""
    return "%s %s -> %d %s" % (r.request.method, r.request.url[:200], r.status_code, body)


def assert_error(r, status=None):
    """A Zaqar error: the given status (or any 4xx), a JSON object with title/description."""
    if status is None:
        assert 400 <= r.status_code < 500, describe(r)
    elif isinstance(status, (tuple, list, set)):
        assert r.status_code in status, describe(r)
    else:
        assert r.status_code == status, describe(r)
    ctype = r.headers.get("Content-Type", "")
    assert "json" in ctype.lower(), "error without JSON content type: %r; %s" % (ctype, describe(r))
    try:
        doc = r.json()
    except ValueError:
        raise AssertionError("error body is not JSON: " + describe(r))
    assert isinstance(doc, dict), describe(r)
    assert ("title" in doc) or ("description" in doc), \
        "error body has neither title nor description: " + describe(r)
    return doc


def assert_alive(base):
    r = requests.get(base.rstrip("/") + "/v2/ping", headers=headers("alive-check"), timeout=10)
    assert r.status_code == 204, "server stopped answering ping: " + describe(r)


def rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def is_asan(binary):
    if "asan" in binary:
        return True
    try:
        out = subprocess.run(["ldd", binary], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "libasan" in out


def ids_qs(ids, **extra):
    """A query string with ids=a,b,c and literal commas.

    Zaqar (falcon, auto_parse_qs_csv) splits only on unencoded commas, and requests'
    params={...} would send %2C; python-zaqarclient sends ids=a&ids=b instead, which
    test_zaqarclient.py covers.
    """
    parts = ["ids=" + ",".join(ids)]
    parts += ["%s=%s" % kv for kv in extra.items()]
    return "&".join(parts)


def message_id_from_href(href):
    return href.split("?", 1)[0].rsplit("/", 1)[-1]


def claim_id_from_href(href):
    """claim_id query parameter of a claimed message's href, or None."""
    from urllib.parse import parse_qs, urlsplit
    q = parse_qs(urlsplit(href).query)
    v = q.get("claim_id")
    return v[0] if v else None
