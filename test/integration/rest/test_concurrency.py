"""Many producers and claimers on one queue at once: every posted message is delivered
exactly once (no loss, no duplicate) when each claimed message is deleted with its
claim_id and no claim expires (claim TTL 600 s, far beyond the test's run time).
"""

import collections
import threading
import time

import pytest

from warren import Api, describe, claim_id_from_href, message_id_from_href

pytestmark = pytest.mark.slow

PRODUCERS = 8
PER_PRODUCER = 625          # 5000 messages in all
BATCH = 10
CLAIMERS = 4
DEADLINE = 90.0             # seconds for the whole exchange


def test_producers_and_claimers_exactly_once(base):
    project = Api(base).project
    q = "work"
    Api(base, project=project).create_queue(q)

    posted = {}                      # id -> body
    posted_lock = threading.Lock()
    delivered = collections.Counter()
    delivered_bodies = {}
    deliv_lock = threading.Lock()
    errors = []
    producers_done = threading.Event()
    t_end = time.monotonic() + DEADLINE

    def producer(p):
        api = Api(base, project=project)
        try:
            n = 0
            while n < PER_PRODUCER:
                k = min(BATCH, PER_PRODUCER - n)
                bodies = [{"p": p, "n": n + i} for i in range(k)]
                ids = api.post_messages(q, [{"body": b, "ttl": 3600} for b in bodies])
                assert len(ids) == k
                with posted_lock:
                    for mid, b in zip(ids, bodies):
                        assert mid not in posted, "server reused message id " + mid
                        posted[mid] = b
                n += k
        except BaseException as e:  # noqa: B902 - reported from the main thread
            errors.append("producer %d: %r" % (p, e))

    def claimer(c):
        api = Api(base, project=project)
        empty_after_done = 0
        try:
            while time.monotonic() < t_end:
                r = api.claim(q, limit=20, ttl=600, grace=60)
                if r.status_code == 204:
                    if producers_done.is_set():
                        empty_after_done += 1
                        if empty_after_done >= 2:
                            return
                    else:
                        time.sleep(0.01)
                    continue
                assert r.status_code == 201, describe(r)
                empty_after_done = 0
                msgs = r.json()["messages"]
                assert 1 <= len(msgs) <= 20, len(msgs)
                for m in msgs:
                    mid = message_id_from_href(m["href"])
                    cid = claim_id_from_href(m["href"])
                    with deliv_lock:
                        delivered[mid] += 1
                        delivered_bodies[mid] = m["body"]
                    d = api.delete("/v2/queues/%s/messages/%s" % (q, mid),
                                   params={"claim_id": cid})
                    assert d.status_code == 204, describe(d)
            errors.append("claimer %d: deadline reached" % c)
        except BaseException as e:  # noqa: B902
            errors.append("claimer %d: %r" % (c, e))

    ps = [threading.Thread(target=producer, args=(i,)) for i in range(PRODUCERS)]
    cs = [threading.Thread(target=claimer, args=(i,)) for i in range(CLAIMERS)]
    for t in cs + ps:
        t.start()
    for t in ps:
        t.join()
    producers_done.set()
    for t in cs:
        t.join()

    assert not errors, errors[:5]
    total = PRODUCERS * PER_PRODUCER
    assert len(posted) == total
    dupes = [mid for mid, n in delivered.items() if n > 1]
    assert not dupes, "delivered more than once: %d ids, e.g. %s" % (len(dupes), dupes[:5])
    lost = set(posted) - set(delivered)
    assert not lost, "never delivered: %d ids, e.g. %s" % (len(lost), sorted(lost)[:5])
    phantom = set(delivered) - set(posted)
    assert not phantom, "delivered ids nobody posted: %s" % sorted(phantom)[:5]
    bad_body = [mid for mid in posted if delivered_bodies[mid] != posted[mid]]
    assert not bad_body, "body changed in transit for %d messages" % len(bad_body)
    s = Api(base, project=project).stats(q)
    assert (s["total"], s["claimed"], s["free"]) == (0, 0, 0), s
