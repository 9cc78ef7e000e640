"""kill -9 in a loop under REST load (issue 4, item 5).

Publisher threads POST one message at a time to durable queues (queue
metadata {"_durable": true}); a 201 is the confirm. Consumer threads claim
(limit 10) and delete each claimed message with its claim id; a 204 is the
ack. warrend (--store rocksdb) is killed with SIGKILL and restarted on the same
data dir cycle after cycle; the clients retry through the outage. After the
last restart the publishers stop, the consumers drain, and the ledger must
show every 201 delivered, nothing invented, no message claimed again after
its delete answered 204 (the shard answers only once the delete is in the
log), and a clean restart keeps the
queues empty.
"""

import threading
import time

import pytest
import requests

import durlib as dl
import warren as wl

QUEUES = ["rcrash-1", "rcrash-2"]
PUBLISHERS = 3
CONSUMERS_PER_QUEUE = 1
CYCLES = dl.scaled(5, 3)
MIN_CONFIRMS_PER_CYCLE = dl.scaled(200, 40)
CYCLE_SECONDS = dl.scaled(2.0, 3.0)
TIMEOUT = 5

pytestmark = pytest.mark.slow


def publisher(api, idx, ledger, stop):
    n = 0
    while not stop.is_set():
        q = QUEUES[n % len(QUEUES)]
        mid = "r%d:%d" % (idx, n)
        n += 1
        ledger.attempt(mid)
        sent = time.monotonic()
        try:
            r = api.post("/v2/queues/%s/messages" % q, json={"messages": [{"body": {"m": mid}}]},
                         timeout=TIMEOUT)
        except requests.RequestException:
            time.sleep(0.05)  # down: try the next one
            continue
        if r.status_code == 201:
            ledger.confirm(mid, q, sent)
        elif r.status_code not in (503,):
            ledger.error("post %s: %s" % (mid, wl.describe(r)))


class Consumer:
    def __init__(self, api, queue, ledger):
        self.api, self.queue, self.ledger = api, queue, ledger
        self.stop = threading.Event()
        self.idle = False
        self.thread = threading.Thread(target=self.run, daemon=True)

    def drained(self):
        return self.idle

    def run(self):
        while not self.stop.is_set():
            try:
                self.step()
            except requests.RequestException:
                self.idle = False
                time.sleep(0.05)

    def step(self):
        r = self.api.post("/v2/queues/%s/claims" % self.queue, params={"limit": 10},
                          json={"ttl": 300, "grace": 60}, timeout=TIMEOUT)
        if r.status_code == 204:
            self.idle = True
            time.sleep(0.05)
            return
        if r.status_code != 201:
            self.ledger.error("claim: " + wl.describe(r))
            return
        self.idle = False
        for m in r.json()["messages"]:
            mid = m["body"]["m"]
            self.ledger.deliver(mid, self.queue, False)
            d = self.api.delete(m["href"], timeout=TIMEOUT)
            if d.status_code == 204:
                self.ledger.ack([mid])


def totals(api):
    return [api.stats(q)["total"] for q in QUEUES]


@pytest.fixture(scope="module")
def run():
    w = dl.durable_warren()
    ledger = dl.Ledger()
    stop_pub = threading.Event()
    cons = []
    try:
        w.start()
        project = wl.new_project()
        admin = wl.Api(w.url, project=project)
        for q in QUEUES:
            admin.create_queue(q, {"_durable": True})
        pubs = [threading.Thread(target=publisher, args=(wl.Api(w.url, project=project), i,
                                                         ledger, stop_pub), daemon=True)
                for i in range(PUBLISHERS)]
        cons = [Consumer(wl.Api(w.url, project=project), q, ledger) for q in QUEUES
                for _ in range(CONSUMERS_PER_QUEUE)]
        dl.crash_run(w, ledger, pubs, stop_pub, cons, lambda: totals(admin),
                     CYCLES, CYCLE_SECONDS, MIN_CONFIRMS_PER_CYCLE)
        yield ledger
    finally:
        dl.crash_teardown(w, stop_pub, cons)


def test_every_201_message_is_delivered(run):
    lost = run.lost()
    assert not lost, "%d messages answered 201 and lost, e.g. %s; %s" % (
        len(lost), lost[:10], run.summary())


def test_nothing_unposted_is_delivered(run):
    forged = run.forged()
    assert not forged, "%d claimed messages never posted: %s" % (len(forged), forged[:10])


def test_no_unexpected_answers(run):
    assert not run.errors, "\n".join(run.errors[:10])


def test_a_delete_followed_by_a_201_never_comes_back(run):
    back = run.acked_then_delivered(certain_only=True)
    assert not back, "deleted messages claimed again:\n" + "\n".join(
        run.history(m) for m, _ in back[:5])


def test_a_deleted_message_never_comes_back(run):
    back = run.acked_then_delivered()
    assert not back, "%d messages claimed again after their DELETE answered 204: %s" % (
        len(back), dl.ids_list(back))


def test_drained_queues_stay_empty_after_a_clean_restart(run):
    assert run.after_clean_restart == [0] * len(QUEUES)
