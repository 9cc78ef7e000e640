"""Celery over AMQP: a real `celery worker` process (py-amqp transport) against warrend,
result backend rpc:// (replies on an x-expires queue), as users run it.

The task module is written to a temp dir; the worker runs `-P solo` so it is one
process whose pid we stop (SIGTERM, then SIGKILL if it lingers). Heartbeats, mingle and
gossip stay on (Celery's defaults), so the pidbox / celeryev exchanges and queues with
x-message-ttl / x-expires are exercised too.
"""

import os
import signal
import subprocess
import sys
import textwrap
import uuid

import pytest

celery = pytest.importorskip("celery")

TASKS = textwrap.dedent("""
    import os
    from celery import Celery

    app = Celery("wtasks", broker=os.environ["WT_BROKER"], backend="rpc://")
    app.conf.task_default_queue = os.environ["WT_QUEUE"]
    app.conf.broker_connection_retry_on_startup = False
    app.conf.broker_connection_max_retries = 1

    @app.task
    def add(x, y):
        return x + y
""")


@pytest.fixture
def tasks(tmp_path, amqp_port, monkeypatch):
    (tmp_path / "wtasks.py").write_text(TASKS)
    monkeypatch.setenv("WT_BROKER", "amqp://guest:guest@127.0.0.1:%d//" % amqp_port)
    monkeypatch.setenv("WT_QUEUE", "celery-%s" % uuid.uuid4().hex[:12])
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("wtasks", None)
    import wtasks
    yield wtasks
    # close the rpc:// result consumer's broker connection; app.close() leaves it open
    app = wtasks.app
    rc = getattr(app.backend, "result_consumer", None)
    if rc is not None and rc._connection is not None:
        try:
            rc.stop()
        except Exception:
            pass
    app.close()
    sys.modules.pop("wtasks", None)


def stop_worker(p, timeout=10):
    """SIGTERM a worker process; SIGKILL if it is still there after timeout s."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


@pytest.fixture
def worker(tasks, tmp_path):
    log = open(tmp_path / "worker.log", "w+")
    p = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "wtasks", "worker", "-P", "solo",
         "-l", "INFO", "-n", "w-%s@localhost" % uuid.uuid4().hex[:8]],
        cwd=str(tmp_path), env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT)
    try:
        yield p
    finally:
        stop_worker(p)
        log.seek(0)
        out = log.read()
        log.close()
        print(out[-4000:])


def test_celery_add_delay_get(tasks, worker):
    r = tasks.add.delay(2, 3)
    try:
        assert r.get(timeout=20) == 5
    finally:
        assert worker.poll() is None, "celery worker exited early (rc %r)" % worker.returncode


def test_celery_worker_stops_cleanly_on_sigterm(tasks, worker):
    assert tasks.add.delay(20, 22).get(timeout=20) == 42
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(15) == 0
