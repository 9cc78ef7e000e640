"""Claims resource: POST /v2/queues/{q}/claims, GET/PATCH/DELETE .../claims/{cid}.

Spec: /work/shared/reference/zaqar-v2.md (claim rows, "Claim semantics"); Zaqar
zaqar/transport/wsgi/v2_0/claims.py and tests/unit/transport/wsgi/v2_0/test_claims.py.
Claim expiry is not waited for here (the minimum claim TTL is 60 s); the core unit
tests cover it.
"""

import json
from urllib.parse import urlsplit

import pytest

from warren import assert_error, describe, claim_id_from_href, message_id_from_href


def claims_path(q):
    return "/v2/queues/%s/claims" % q


def claim_of(r):
    """(claim path, claim id, [message ids]) of a 201 claim response."""
    assert r.status_code == 201, describe(r)
    path = urlsplit(r.headers["Location"]).path
    cid = path.rsplit("/", 1)[-1]
    mids = [message_id_from_href(m["href"]) for m in r.json()["messages"]]
    return path, cid, mids


def test_claim_201_location_and_message_hrefs(api):
    ids = api.post_bodies("c", ["a", "b", "c"])
    r = api.claim("c", ttl=100, grace=60)
    path, cid, mids = claim_of(r)
    assert path == "/v2/queues/c/claims/" + cid and cid
    assert mids == ids, "claims take the oldest messages first"
    for m, body in zip(r.json()["messages"], ["a", "b", "c"]):
        assert m["body"] == body
        assert urlsplit(m["href"]).path == "/v2/queues/c/messages/" + m["id"]
        assert claim_id_from_href(m["href"]) == cid
        assert "ttl" in m and m["age"] >= 0
    # a claimed message read by id carries the claim in its href
    doc = api.get("/v2/queues/c/messages/" + ids[0]).json()
    assert claim_id_from_href(doc["href"]) == cid, doc


def test_claim_empty_queue_204_no_body(api):
    api.create_queue("empty")
    r = api.claim("empty")
    assert r.status_code == 204, describe(r)
    assert not r.content
    r = api.claim("neverexisted")
    assert r.status_code == 204, describe(r)


def test_claim_without_body_uses_defaults(api):
    api.post_bodies("nobody", [1])
    r = api.post(claims_path("nobody"))
    path, cid, mids = claim_of(r)
    doc = api.get(path).json()
    assert doc["ttl"] == 300, doc


def test_claim_empty_object_uses_defaults(api):
    api.post_bodies("emptyobj", [1])
    r = api.post(claims_path("emptyobj"), json={})
    path, _, _ = claim_of(r)
    assert api.get(path).json()["ttl"] == 300


def test_claim_default_limit_10(api):
    api.post_bodies("deflim", list(range(15)))
    r = api.post(claims_path("deflim"), json={"ttl": 60, "grace": 60})
    assert len(claim_of(r)[2]) == 10


@pytest.mark.parametrize("limit", [1, 3, 20])
def test_claim_limit(api, limit):
    api.post_bodies("lim", list(range(25)))
    assert len(claim_of(api.claim("lim", limit=limit))[2]) == limit


@pytest.mark.parametrize("limit", ["0", "21", "-1", "x", "100000000000000000000"])
def test_claim_bad_limit_400(api, limit):
    api.post_bodies("badlim", [1])
    assert_error(api.claim("badlim", limit=limit), 400)
    assert api.stats("badlim")["claimed"] == 0


@pytest.mark.parametrize("ttl,grace", [(60, 60), (43200, 43200)])
def test_claim_ttl_grace_bounds_accepted(api, ttl, grace):
    api.post_bodies("tgok", [1])
    path, _, _ = claim_of(api.claim("tgok", ttl=ttl, grace=grace))
    assert api.get(path).json()["ttl"] == ttl


@pytest.mark.parametrize("ttl,grace", [(-1, -1), (59, 60), (60, 59), (60, 43201),
                                       (43201, 60), (0, 60), ("100", 60), (100, "60"),
                                       (10 ** 15, 60)])
def test_claim_bad_ttl_or_grace_400(api, ttl, grace):
    api.post_bodies("tgbad", [1])
    assert_error(api.claim("tgbad", ttl=ttl, grace=grace), 400)
    assert api.stats("tgbad")["claimed"] == 0


@pytest.mark.parametrize("raw", [b"[", b"[]", b".", b'"fail"', b"{\"ttl\": }"])
def test_claim_bad_document_400(api, raw):
    api.post_bodies("baddoc", [1])
    r = api.post(claims_path("baddoc"), data=raw, headers={"Content-Type": "application/json"})
    assert_error(r, 400)


def test_get_claim(api):
    ids = api.post_bodies("get", ["x", "y"])
    path, cid, mids = claim_of(api.claim("get", ttl=120, grace=60))
    r = api.get(path)
    assert r.status_code == 200, describe(r)
    doc = r.json()
    assert doc["ttl"] == 120
    assert doc["age"] >= 0
    assert urlsplit(doc["href"]).path == path
    assert sorted(message_id_from_href(m["href"]) for m in doc["messages"]) == sorted(ids)
    for m in doc["messages"]:
        assert claim_id_from_href(m["href"]) == cid


def test_get_unknown_claim_404(api):
    api.post_bodies("g404", [1])
    assert_error(api.get(claims_path("g404") + "/a"), 404)
    assert_error(api.get(claims_path("nonexistent") + "/aaabbbba"), 404)


def test_patch_claim_renews(api):
    api.post_bodies("renew", [1])
    path, _, _ = claim_of(api.claim("renew", ttl=100, grace=60))
    r = api.patch(path, json={"ttl": 200, "grace": 100})
    assert r.status_code == 204, describe(r)
    doc = api.get(path).json()
    assert doc["ttl"] == 200
    assert doc["age"] <= 2, "renewal resets the claim's age"


def test_patch_claim_missing_fields_take_defaults(api):
    api.post_bodies("patchdef", [1])
    path, _, _ = claim_of(api.claim("patchdef", ttl=100, grace=60))
    r = api.patch(path, json={"grace": 60})
    assert r.status_code == 204, describe(r)
    assert api.get(path).json()["ttl"] == 300


@pytest.mark.parametrize("ttl", [-1, 59, 43201, "90"])
def test_patch_claim_bad_ttl_400(api, ttl):
    api.post_bodies("patchbad", [1])
    path, _, _ = claim_of(api.claim("patchbad", ttl=100, grace=60))
    assert_error(api.patch(path, json={"ttl": ttl}), 400)
    assert api.get(path).json()["ttl"] == 100


@pytest.mark.parametrize("raw", [b"", b"[", b"[]", b'"fail"'])
def test_patch_claim_bad_body_400(api, raw):
    api.post_bodies("patchbody", [1])
    path, _, _ = claim_of(api.claim("patchbody", ttl=100, grace=60))
    r = api.patch(path, data=raw, headers={"Content-Type": "application/json"})
    assert_error(r, 400)


def test_patch_unknown_claim_404(api):
    api.post_bodies("p404", [1])
    assert_error(api.patch(claims_path("p404") + "/a", json={"ttl": 100}), 404)


def test_delete_claim_releases_messages(api):
    ids = api.post_bodies("release", [1, 2])
    path, cid, mids = claim_of(api.claim("release"))
    assert api.claim("release").status_code == 204
    r = api.delete(path)
    assert r.status_code == 204, describe(r)
    assert_error(api.get(path), 404)
    assert_error(api.patch(path, json={"ttl": 100}), 404)
    # released messages are visible and claimable again
    listed = api.get("/v2/queues/release/messages", params={"echo": "true"}).json()
    assert [m["id"] for m in listed["messages"]] == ids
    _, cid2, mids2 = claim_of(api.claim("release"))
    assert cid2 != cid and mids2 == ids


def test_delete_unknown_claim_204(api):
    api.create_queue("d204")
    assert api.delete(claims_path("d204") + "/a").status_code == 204
    assert api.delete(claims_path("nosuchqueue") + "/a").status_code == 204


def test_claimed_messages_hidden_from_other_claims(api):
    ids = api.post_bodies("excl", list(range(8)))
    _, c1, m1 = claim_of(api.claim("excl", limit=5))
    _, c2, m2 = claim_of(api.claim("excl", limit=5))
    assert c1 != c2
    assert m1 == ids[:5] and m2 == ids[5:]
    assert api.claim("excl", limit=5).status_code == 204
    s = api.stats("excl")
    assert (s["claimed"], s["free"], s["total"]) == (8, 0, 8), s


def test_deleting_claimed_message_with_claim_id_removes_it_from_claim(api):
    ids = api.post_bodies("ack", ["a", "b"])
    r = api.claim("ack")
    path, cid, _ = claim_of(r)
    href = r.json()["messages"][0]["href"]
    assert api.delete(href).status_code == 204
    doc = api.get(path).json()
    assert [message_id_from_href(m["href"]) for m in doc["messages"]] == [ids[1]]
    assert api.stats("ack")["total"] == 1


def test_claim_other_tenant_cannot_see(api, base):
    from warren import Api
    api.post_bodies("mine", [1])
    path, _, _ = claim_of(api.claim("mine"))
    other = Api(base)
    assert_error(other.get(path), 404)
    assert other.claim("mine").status_code == 204


def test_claim_extends_short_lived_messages(api):
    # "sets each message's expiry to at least claim expiry + grace": a message that
    # would die before the claim ends is kept alive, and its ttl says so
    short, long_ = api.post_messages("extend", [{"body": "s", "ttl": 60},
                                                {"body": "l", "ttl": 3600}])
    r = api.claim("extend", ttl=300, grace=60)
    path, _, _ = claim_of(r)
    ttls = {message_id_from_href(m["href"]): m["ttl"] for m in r.json()["messages"]}
    assert ttls == {short: 360, long_: 3600}, ttls
    assert api.get("/v2/queues/extend/messages/" + short).json()["ttl"] == 360
    assert api.get("/v2/queues/extend/messages/" + long_).json()["ttl"] == 3600
    # renewing pushes it further
    assert api.patch(path, json={"ttl": 600, "grace": 120}).status_code == 204
    assert api.get("/v2/queues/extend/messages/" + short).json()["ttl"] == 720


def test_deleting_queue_drops_its_claims(api):
    api.post_bodies("gone", [1, 2])
    path, cid, mids = claim_of(api.claim("gone"))
    assert api.delete("/v2/queues/gone").status_code == 204
    assert_error(api.get(path), 404)
    # a new queue of the same name starts empty and knows nothing of the old claim
    api.post_bodies("gone", [3])
    assert_error(api.get(path), 404)
    r = api.claim("gone")
    assert [m["body"] for m in r.json()["messages"]] == [3]
