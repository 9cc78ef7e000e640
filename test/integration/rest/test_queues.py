"""Queues resource: PUT/GET/PATCH/DELETE /v2/queues/{q}, listing, stats, purge.

Spec: /work/shared/reference/zaqar-v2.md (queue rows of the table); Zaqar sources
zaqar/transport/wsgi/v2_0/queues.py, purge.py, stats.py and validation.py.
"""

from urllib.parse import urlsplit, parse_qs

import pytest

from warren import assert_error, describe

PATCH_CT = "application/openstack-messaging-v2.0-json-patch"

RESERVED_DEFAULTS = {
    "_max_messages_post_size": 262144,
    "_default_message_ttl": 3600,
    "_default_message_delay": 0,
}
RESERVED_NULLS = ("_max_claim_count", "_dead_letter_queue", "_dead_letter_queue_messages_ttl")


def location_path(r):
    loc = r.headers.get("Location")
    assert loc, "no Location header: " + describe(r)
    return urlsplit(loc).path


# --- PUT -------------------------------------------------------------------

def test_put_creates_201_then_204_with_location(api):
    r = api.put("/v2/queues/fizbit")
    assert r.status_code == 201, describe(r)
    assert location_path(r) == "/v2/queues/fizbit"
    r = api.put("/v2/queues/fizbit")
    assert r.status_code == 204, describe(r)
    assert location_path(r) == "/v2/queues/fizbit"
    assert not r.content


def test_put_with_metadata_and_get_fills_reserved_defaults(api):
    r = api.put("/v2/queues/meta", json={"type": "Bank Accounts", "n": 1})
    assert r.status_code == 201, describe(r)
    r = api.get("/v2/queues/meta")
    assert r.status_code == 200, describe(r)
    doc = r.json()
    assert doc["type"] == "Bank Accounts"
    assert doc["n"] == 1
    for k, v in RESERVED_DEFAULTS.items():
        assert doc.get(k) == v, (k, doc)
    for k in RESERVED_NULLS:
        assert doc.get(k) is None, (k, doc)
    assert doc.get("_enable_encrypt_messages", False) is False, doc


def test_get_metadata_of_queue_without_metadata(api):
    api.create_queue("plain")
    r = api.get("/v2/queues/plain")
    assert r.status_code == 200, describe(r)
    doc = r.json()
    for k, v in RESERVED_DEFAULTS.items():
        assert doc.get(k) == v, (k, doc)


def test_put_reserved_key_overrides_default(api):
    api.create_queue("custom", {"_default_message_ttl": 999})
    doc = api.get("/v2/queues/custom").json()
    assert doc["_default_message_ttl"] == 999


def test_get_unknown_queue_404(api):
    assert_error(api.get("/v2/queues/nosuchqueue"), 404)


@pytest.mark.parametrize("meta", [
    {"_default_message_ttl": 59},
    {"_default_message_ttl": 1209601},
    {"_default_message_ttl": "3600"},
    {"_max_messages_post_size": 262145},
    {"_max_messages_post_size": "big"},
])
def test_put_bad_reserved_metadata_400(api, meta):
    assert_error(api.put("/v2/queues/badmeta", json=meta), 400)
    assert_error(api.get("/v2/queues/badmeta"), 404)


@pytest.mark.parametrize("body", ["[1, 2]", '"text"', "{", "{\"a\": }"])
def test_put_metadata_not_an_object_400(api, body):
    r = api.put("/v2/queues/badbody", data=body, headers={"Content-Type": "application/json"})
    assert_error(r, 400)


def test_put_metadata_over_64k_400(api):
    big = {"blob": "x" * (64 * 1024 + 1)}
    assert_error(api.put("/v2/queues/bigmeta", json=big), 400)


def test_put_metadata_just_under_64k_ok(api):
    meta = {"blob": "x" * (60 * 1024)}
    r = api.put("/v2/queues/okmeta", json=meta)
    assert r.status_code == 201, describe(r)
    assert api.get("/v2/queues/okmeta").json()["blob"] == meta["blob"]


# --- PATCH -----------------------------------------------------------------

def patch(api, name, ops, ctype=PATCH_CT):
    return api.patch("/v2/queues/" + name, json=ops, headers={"Content-Type": ctype})


def test_patch_add_replace_remove(api):
    api.create_queue("p", {"a": 1, "b": 2})
    r = patch(api, "p", [{"op": "add", "path": "/metadata/c", "value": "three"},
                         {"op": "replace", "path": "/metadata/a", "value": 10},
                         {"op": "remove", "path": "/metadata/b"}])
    assert r.status_code == 200, describe(r)
    doc = r.json()
    assert doc["a"] == 10 and doc["c"] == "three" and "b" not in doc, doc
    assert doc["_default_message_ttl"] == 3600, doc
    got = api.get("/v2/queues/p").json()
    assert got["a"] == 10 and got["c"] == "three" and "b" not in got, got


def test_patch_reserved_key(api):
    api.create_queue("pr")
    r = patch(api, "pr", [{"op": "replace", "path": "/metadata/_default_message_ttl",
                           "value": 1000}])
    assert r.status_code == 200, describe(r)
    assert api.get("/v2/queues/pr").json()["_default_message_ttl"] == 1000
    # removing a reserved key that was never stored is fine (python-zaqarclient does it)
    r = patch(api, "pr", [{"op": "remove", "path": "/metadata/_max_messages_post_size"}])
    assert r.status_code == 200, describe(r)


def test_patch_wrong_content_type_415(api):
    api.create_queue("p415")
    r = patch(api, "p415", [{"op": "add", "path": "/metadata/a", "value": 1}],
              ctype="application/json")
    assert_error(r, 415)
    assert PATCH_CT in r.headers.get("Accept-Patch", ""), r.headers


@pytest.mark.parametrize("op", ["replace", "remove"])
def test_patch_missing_key_409(api, op):
    api.create_queue("p409", {"a": 1})
    change = {"op": op, "path": "/metadata/nokey"}
    if op == "replace":
        change["value"] = 1
    assert_error(patch(api, "p409", [change]), 409)
    assert api.get("/v2/queues/p409").json()["a"] == 1


@pytest.mark.parametrize("ops", [
    {"op": "add", "path": "/metadata/a", "value": 1},            # not an array
    [{"op": "move", "path": "/metadata/a", "value": 1}],          # unknown op
    [{"path": "/metadata/a", "value": 1}],                        # no op
    [{"op": "add", "value": 1}],                                  # no path
    [{"op": "add", "path": "/metadata/a"}],                       # add without value
    [{"op": "add", "path": "/other/a", "value": 1}],              # root not metadata
    [{"op": "add", "path": "metadata/a", "value": 1}],            # not a pointer
    [{"op": "add", "path": "/metadata/a/b", "value": 1}],         # too deep
    ["add"],                                                      # op not an object
    [{"op": "replace", "path": "/metadata/_default_message_ttl", "value": 5}],
])
def test_patch_bad_document_400(api, ops):
    api.create_queue("p400", {"a": 1})
    assert_error(patch(api, "p400", ops), 400)
    assert api.get("/v2/queues/p400").json()["a"] == 1


def test_patch_empty_body_400(api):
    api.create_queue("pempty")
    r = api.patch("/v2/queues/pempty", data=b"", headers={"Content-Type": PATCH_CT})
    assert_error(r, 400)


def test_patch_malformed_json_400(api):
    api.create_queue("pjson")
    r = api.patch("/v2/queues/pjson", data=b"[{", headers={"Content-Type": PATCH_CT})
    assert_error(r, 400)


def test_patch_unknown_queue_404(api):
    r = patch(api, "nosuch", [{"op": "add", "path": "/metadata/a", "value": 1}])
    assert_error(r, 404)


# --- DELETE ----------------------------------------------------------------

def test_delete_204_then_gone_and_again_204(api):
    api.create_queue("d")
    api.post_bodies("d", ["x", "y"])
    r = api.delete("/v2/queues/d")
    assert r.status_code == 204, describe(r)
    assert_error(api.get("/v2/queues/d"), 404)
    r = api.delete("/v2/queues/d")
    assert r.status_code == 204, describe(r)


def test_delete_missing_queue_204(api):
    r = api.delete("/v2/queues/neverexisted")
    assert r.status_code == 204, describe(r)


def test_delete_removes_messages(api):
    api.create_queue("dm")
    ids = api.post_bodies("dm", [1, 2, 3])
    assert api.delete("/v2/queues/dm").status_code == 204
    api.create_queue("dm")
    r = api.get("/v2/queues/dm/messages", params={"echo": "true"})
    assert r.status_code == 200, describe(r)
    assert r.json()["messages"] == []
    r = api.get("/v2/queues/dm/messages/" + ids[0])
    assert_error(r, 404)
    s = api.stats("dm")
    assert s["total"] == 0, s


# --- list ------------------------------------------------------------------

def list_all(api, **params):
    """Follow rel=next links; return the names in order and the pages seen."""
    names, pages = [], 0
    r = api.get("/v2/queues", params=params)
    while True:
        assert r.status_code == 200, describe(r)
        doc = r.json()
        pages += 1
        assert pages < 100, "paging does not terminate"
        if not doc["queues"]:
            assert doc.get("links", []) == [], doc
            return names, pages
        names.extend(q["name"] for q in doc["queues"])
        nxt = [l["href"] for l in doc["links"] if l["rel"] == "next"]
        assert len(nxt) == 1, doc
        assert urlsplit(nxt[0]).path == "/v2/queues", nxt
        assert "marker" in parse_qs(urlsplit(nxt[0]).query), nxt
        r = api.get(nxt[0])


def test_list_empty_project_200(api):
    r = api.get("/v2/queues")
    assert r.status_code == 200, describe(r)
    doc = r.json()
    assert doc["queues"] == []
    assert "count" not in doc
    doc = api.get("/v2/queues", params={"with_count": "true"}).json()
    assert doc["queues"] == []
    assert "count" not in doc, "count is left out when it is 0: %r" % doc


def test_list_pages_through_25_queues_no_dupes_no_gaps(api):
    created = sorted("q%02d" % i for i in range(25))
    for n in created:
        api.create_queue(n)
    names, pages = list_all(api, limit=7)
    assert len(names) == len(set(names)), names
    assert sorted(names) == created
    assert names == sorted(names), "queues are listed by name"
    assert pages >= 4  # 7+7+7+4 and the final empty page


def test_list_default_and_max_limit(api):
    for i in range(22):
        api.create_queue("l%02d" % i)
    r = api.get("/v2/queues")
    assert r.status_code == 200, describe(r)
    assert len(r.json()["queues"]) == 10, "default limit is 10"
    r = api.get("/v2/queues", params={"limit": 20})
    assert len(r.json()["queues"]) == 20
    names, _ = list_all(api)
    assert len(names) == 22 and len(set(names)) == 22


@pytest.mark.parametrize("limit", ["0", "21", "-1", "abc", "100000000000000000000"])
def test_list_bad_limit_400(api, limit):
    assert_error(api.get("/v2/queues", params={"limit": limit}), 400)


def test_list_items_have_name_and_href(api):
    api.create_queue("one", {"k": "v"})
    doc = api.get("/v2/queues").json()
    assert len(doc["queues"]) == 1
    q = doc["queues"][0]
    assert q["name"] == "one"
    assert urlsplit(q["href"]).path == "/v2/queues/one"
    assert "metadata" not in q


def test_list_detailed_includes_metadata(api):
    api.create_queue("det", {"color": "red"})
    doc = api.get("/v2/queues", params={"detailed": "true"}).json()
    q = doc["queues"][0]
    assert q["metadata"]["color"] == "red", q
    # the next link keeps detailed=true
    nxt = doc["links"][0]["href"]
    assert parse_qs(urlsplit(nxt).query).get("detailed") in (["true"], ["True"]), nxt


def test_list_with_count(api):
    for i in range(23):
        api.create_queue("c%02d" % i)
    doc = api.get("/v2/queues", params={"with_count": "true", "limit": 5}).json()
    assert len(doc["queues"]) == 5
    assert doc["count"] == 23, doc


def test_list_filters_on_metadata(api):
    api.create_queue("red1", {"color": "red", "size": 3})
    api.create_queue("red2", {"color": "red", "size": 4})
    api.create_queue("blue", {"color": "blue", "size": 3})
    doc = api.get("/v2/queues", params={"color": "red"}).json()
    assert sorted(q["name"] for q in doc["queues"]) == ["red1", "red2"], doc
    # numeric strings are compared as integers
    doc = api.get("/v2/queues", params={"size": "3"}).json()
    assert sorted(q["name"] for q in doc["queues"]) == ["blue", "red1"], doc


# --- stats -----------------------------------------------------------------

def test_stats_unknown_queue_zeros(api):
    r = api.get("/v2/queues/ghost/stats")
    assert r.status_code == 200, describe(r)
    m = r.json()["messages"]
    assert (m["claimed"], m["free"], m["total"]) == (0, 0, 0), m


def test_stats_counts_free_claimed_oldest_newest(api):
    api.create_queue("st")
    ids = api.post_bodies("st", ["a", "b", "c"])
    r = api.claim("st", limit=1)
    assert r.status_code == 201, describe(r)
    m = api.stats("st")
    assert (m["claimed"], m["free"], m["total"]) == (1, 2, 3), m
    for k, want in (("oldest", ids[0]), ("newest", ids[-1])):
        assert urlsplit(m[k]["href"]).path == "/v2/queues/st/messages/" + want, m
        assert m[k]["age"] >= 0
        assert isinstance(m[k]["created"], str) and m[k]["created"], m


# --- purge -----------------------------------------------------------------

def test_purge_default_removes_messages(api):
    api.create_queue("pg", {"keep": True})
    api.post_bodies("pg", list(range(15)))
    r = api.post("/v2/queues/pg/purge")
    assert r.status_code == 204, describe(r)
    m = api.stats("pg")
    assert m["total"] == 0, m
    # the queue itself and its metadata survive
    assert api.get("/v2/queues/pg").json()["keep"] is True


def test_purge_messages_only(api):
    api.create_queue("pg2")
    api.post_bodies("pg2", [1, 2])
    r = api.post("/v2/queues/pg2/purge", json={"resource_types": ["messages"]})
    assert r.status_code == 204, describe(r)
    assert api.stats("pg2")["total"] == 0


def test_purge_subscriptions_only_keeps_messages(api):
    api.create_queue("pg3")
    api.post_bodies("pg3", [1, 2])
    r = api.post("/v2/queues/pg3/purge", json={"resource_types": ["subscriptions"]})
    assert r.status_code == 204, describe(r)
    assert api.stats("pg3")["total"] == 2


@pytest.mark.parametrize("doc", [
    {"resource_types": ["messages", "claims"]},
    {"resource_types": ["bogus"]},
    {"resource_types": ["queues"]},
])
def test_purge_bad_resource_types_400(api, doc):
    api.create_queue("pgbad")
    api.post_bodies("pgbad", [1])
    assert_error(api.post("/v2/queues/pgbad/purge", json=doc), 400)
    assert api.stats("pgbad")["total"] == 1, "a rejected purge must not delete anything"
