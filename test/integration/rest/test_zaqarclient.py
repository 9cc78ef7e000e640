"""Drive warren with the official python-zaqarclient (Debian python3-zaqarclient), API v2,
noauth backend: the client sends X-Project-Id from auth_opts.options.os_project_id and a
dashless hex Client-ID (uuidutils.generate_uuid(dashed=False)).
"""

import uuid

import pytest

from zaqarclient.queues import client as zclient
from zaqarclient.transport import errors as zerrors


@pytest.fixture
def zc(base):
    project = "zc-" + uuid.uuid4().hex[:10]
    conf = {"auth_opts": {"backend": "noauth", "options": {"os_project_id": project}}}
    return zclient.Client(base, version=2, conf=conf)


def test_ping_and_homedoc(zc):
    assert zc.ping() is True
    assert zc.homedoc()


def test_queue_lifecycle_and_metadata(zc):
    q = zc.queue("zq", force_create=True)
    assert [x.name for x in zc.queues()[0]] == ["zq"]

    q.metadata(new_meta={"type": "Bank Accounts", "name": "test1"})
    q._metadata = None
    meta = q.metadata()
    assert meta["type"] == "Bank Accounts" and meta["name"] == "test1", meta
    assert meta["_max_messages_post_size"] == 262144
    assert meta["_default_message_ttl"] == 3600

    # replace + add + a reserved key; the client also sends "remove" for every key
    # the GET returned and new_meta lacks, including reserved defaults
    q.metadata(new_meta={"type": "test", "age": 13, "_default_message_ttl": 1000})
    q._metadata = None
    meta = q.metadata()
    assert meta["type"] == "test" and meta["age"] == 13 and "name" not in meta, meta
    assert meta["_default_message_ttl"] == 1000

    q.delete()
    assert [x.name for x in zc.queues()[0]] == []


def test_messages_claim_delete_release_pop_stats(zc):
    q = zc.queue("work", force_create=True)
    q.post([{"body": {"n": i}, "ttl": 600} for i in range(6)])

    listed = list(q.messages(echo=True))
    assert [m.body["n"] for m in listed] == list(range(6))
    ids = [m.id for m in listed]
    got = q.message(ids[0])
    assert got.id == ids[0] and got.body == {"n": 0} and got.ttl == 600
    assert sorted(m.id for m in q.messages(*ids[:2])) == sorted(ids[:2])

    stats = q.stats["messages"]
    assert (stats["total"], stats["free"], stats["claimed"]) == (6, 6, 0), stats

    claim = q.claim(ttl=120, grace=60, limit=2)
    claimed = list(claim)
    assert [m.body["n"] for m in claimed] == [0, 1]
    assert all(m.claim_id == claim.id for m in claimed)
    assert claim.ttl == 120
    assert q.stats["messages"]["claimed"] == 2

    # delete a claimed message (with its claim id), then release the rest of the claim
    claimed[0].delete()
    with pytest.raises(zerrors.ResourceNotFound):
        q.message(claimed[0].id)
    claim.update(ttl=180)
    assert zc.queue("work", auto_create=False).claim(id=claim.id).ttl == 180
    claim.delete()
    stats = q.stats["messages"]
    assert (stats["total"], stats["claimed"]) == (5, 0), stats

    popped = list(q.pop(count=2))
    assert [m.body["n"] for m in popped] == [1, 2]
    assert q.stats["messages"]["total"] == 3

    q.delete_messages(*ids[3:5])
    assert [m.body["n"] for m in q.messages(echo=True)] == [5]

    q.delete()
    assert q.stats["messages"]["total"] == 0


def test_claim_on_empty_queue(zc):
    q = zc.queue("idle", force_create=True)
    claim = q.claim(ttl=60, grace=60)
    assert list(claim) == []


def test_purge(zc):
    q = zc.queue("purgeme", force_create=True)
    q.post([{"body": i} for i in range(4)])
    q.purge(resource_types=["messages"])
    assert q.stats["messages"]["total"] == 0


def test_tenants_isolated_through_client(base, zc):
    q = zc.queue("mine", force_create=True)
    q.post({"body": "private"})
    conf = {"auth_opts": {"backend": "noauth", "options": {"os_project_id": "intruder"}}}
    other = zclient.Client(base, version=2, conf=conf)
    assert "mine" not in [x.name for x in other.queues()[0]]
    assert list(other.queue("mine", auto_create=False).messages(echo=True)) == []
