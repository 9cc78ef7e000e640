"""Long-poll (warren extension): `?wait=N` (0..20 s) on POST .../claims and on
DELETE .../messages?pop=N. An empty queue answers after ~N s as it would have
immediately (claim 204, pop 200 []); a message arriving during the wait is returned
at once; wait outside 0..20 is 400.
"""

import threading
import time

import pytest

from warren import Api, assert_error, describe

pytestmark = pytest.mark.slow


def claim_wait(api, q, wait, limit=None):
    params = {"wait": wait}
    if limit is not None:
        params["limit"] = limit
    t0 = time.monotonic()
    r = api.post("/v2/queues/%s/claims" % q, params=params, json={"ttl": 300, "grace": 60})
    return r, time.monotonic() - t0


def pop_wait(api, q, wait, n=1):
    t0 = time.monotonic()
    r = api.delete("/v2/queues/%s/messages" % q, params={"pop": n, "wait": wait})
    return r, time.monotonic() - t0


def post_later(base, project, q, body, delay):
    def run():
        time.sleep(delay)
        Api(base, project=project).post_bodies(q, [body])
    t = threading.Thread(target=run)
    t.start()
    return t


def test_claim_wait_empty_queue_204_after_wait(api):
    api.create_queue("lp")
    r, dt = claim_wait(api, "lp", 2)
    assert r.status_code == 204, describe(r)
    assert 1.8 <= dt < 5, "waited %.2f s for wait=2" % dt


def test_claim_wait_returns_message_posted_during_wait(api, base):
    api.create_queue("lp2")
    t = post_later(base, api.project, "lp2", "wake-up", 0.5)
    r, dt = claim_wait(api, "lp2", 10)
    t.join()
    assert r.status_code == 201, describe(r)
    assert [m["body"] for m in r.json()["messages"]] == ["wake-up"]
    assert dt < 3, "message posted after 0.5 s came back after %.2f s" % dt


def test_claim_wait_on_missing_queue_wakes_when_created_by_post(api, base):
    t = post_later(base, api.project, "lp-lazy", "first", 0.5)
    r, dt = claim_wait(api, "lp-lazy", 10)
    t.join()
    assert r.status_code == 201, describe(r)
    assert dt < 3, dt


def test_claim_wait_nonempty_returns_immediately(api):
    api.post_bodies("lp3", [1, 2])
    r, dt = claim_wait(api, "lp3", 10)
    assert r.status_code == 201, describe(r)
    assert len(r.json()["messages"]) == 2
    assert dt < 1.5, dt


def test_claim_wait_zero_is_immediate(api):
    api.create_queue("lp0")
    r, dt = claim_wait(api, "lp0", 0)
    assert r.status_code == 204, describe(r)
    assert dt < 1.0, dt


def test_claim_wait_other_tenant_does_not_wake(api, base):
    api.create_queue("lpt")
    t = post_later(base, "someone-else", "lpt", "not yours", 0.3)
    r, dt = claim_wait(api, "lpt", 2)
    t.join()
    assert r.status_code == 204, describe(r)
    assert dt >= 1.8, dt


def test_two_waiters_one_message_delivered_once(api, base):
    api.create_queue("lp-two")
    results = []

    def waiter():
        results.append(claim_wait(Api(base, project=api.project), "lp-two", 3))

    ts = [threading.Thread(target=waiter) for _ in range(2)]
    for t in ts:
        t.start()
    time.sleep(0.5)
    api.post_bodies("lp-two", ["only-one"])
    for t in ts:
        t.join()
    statuses = sorted(r.status_code for r, _ in results)
    assert statuses == [201, 204], [describe(r) for r, _ in results]
    winner = [(r, dt) for r, dt in results if r.status_code == 201][0]
    assert winner[1] < 2.5, winner[1]
    assert [m["body"] for m in winner[0].json()["messages"]] == ["only-one"]


@pytest.mark.parametrize("wait", ["21", "-1", "1000000", "abc", "1.5"])
def test_claim_bad_wait_400(api, wait):
    api.post_bodies("lpbad", [1])
    r, dt = claim_wait(api, "lpbad", wait)
    assert_error(r, 400)
    assert dt < 1.5, "a bad wait must be refused at once"
    assert api.stats("lpbad")["claimed"] == 0


def test_pop_wait_empty_queue_after_wait(api):
    api.create_queue("pw")
    r, dt = pop_wait(api, "pw", 2)
    assert r.status_code == 200, describe(r)
    assert r.json()["messages"] == []
    assert 1.8 <= dt < 5, dt


def test_pop_wait_returns_message_posted_during_wait(api, base):
    api.create_queue("pw2")
    t = post_later(base, api.project, "pw2", "popped", 0.5)
    r, dt = pop_wait(api, "pw2", 10, n=5)
    t.join()
    assert r.status_code == 200, describe(r)
    assert [m["body"] for m in r.json()["messages"]] == ["popped"]
    assert dt < 3, dt
    assert api.stats("pw2")["total"] == 0


@pytest.mark.parametrize("wait", ["21", "-1", "x"])
def test_pop_bad_wait_400(api, wait):
    api.post_bodies("pwbad", [1])
    r, dt = pop_wait(api, "pwbad", wait)
    assert_error(r, 400)
    assert dt < 1.5, dt
    assert api.stats("pwbad")["total"] == 1
