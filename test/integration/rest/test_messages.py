"""Messages resource: POST/GET/DELETE /v2/queues/{q}/messages[/{id}], pop, bulk get/delete.

Spec: /work/shared/reference/zaqar-v2.md (message rows, "POST body size", "Message TTL and
delay on POST"); Zaqar zaqar/transport/wsgi/v2_0/messages.py, validation.py and its unit
tests zaqar/tests/unit/transport/wsgi/v2_0/test_messages.py.
"""

import json
from urllib.parse import urlsplit, parse_qs

import pytest
import requests

from warren import (Api, assert_alive, assert_error, claim_id_from_href, describe, ids_qs,
                    message_id_from_href)

MAX_POST = 262144


def msgs_path(q):
    return "/v2/queues/%s/messages" % q


def list_page(api, q, **params):
    r = api.get(msgs_path(q), params=params)
    assert r.status_code == 200, describe(r)
    return r.json()


def list_all(api, q, **params):
    """Follow rel=next links until an empty page; return all listed messages."""
    out = []
    doc = list_page(api, q, **params)
    for _ in range(200):
        if not doc["messages"]:
            assert doc["links"] == [], doc
            return out
        out.extend(doc["messages"])
        nxt = [l["href"] for l in doc["links"] if l["rel"] == "next"]
        assert len(nxt) == 1, doc
        r = api.get(nxt[0])
        assert r.status_code == 200, describe(r)
        doc = r.json()
    raise AssertionError("message paging does not terminate")


# --- POST ------------------------------------------------------------------

def test_post_batch_201_resources_and_location(api):
    bodies = [239, {"key": "value"}, [1, 3]]
    r = api.post(msgs_path("fizbit"), json={"messages": [
        {"body": b, "ttl": 100 * (i + 1)} for i, b in enumerate(bodies)]})
    assert r.status_code == 201, describe(r)
    res = r.json()["resources"]
    assert len(res) == 3
    ids = [h.rsplit("/", 1)[-1] for h in res]
    assert len(set(ids)) == 3
    for h in res:
        assert h == "/v2/queues/fizbit/messages/" + h.rsplit("/", 1)[-1], res
    loc = urlsplit(r.headers["Location"])
    assert loc.path == "/v2/queues/fizbit/messages"
    assert parse_qs(loc.query)["ids"] == [",".join(ids)]
    assert "partial" not in r.json()
    # each one can be read back with its body and ttl
    for i, (mid, b) in enumerate(zip(ids, bodies)):
        m = api.get(msgs_path("fizbit") + "/" + mid)
        assert m.status_code == 200, describe(m)
        doc = m.json()
        assert doc["id"] == mid
        assert doc["body"] == b
        assert doc["ttl"] == 100 * (i + 1)
        assert doc["age"] >= 0
        assert urlsplit(doc["href"]).path == "/v2/queues/fizbit/messages/" + mid


@pytest.mark.parametrize("body", [0, -5, 1.5, "", "text", None, True, False, [], {},
                                  {"nested": {"deep": [1, {"x": None}]}}, "h\u00e9llo \u2603"])
def test_post_any_json_body_round_trips(api, body):
    mid = api.post_messages("anybody", [{"body": body}])[0]
    doc = api.get(msgs_path("anybody") + "/" + mid).json()
    assert doc["body"] == body and type(doc["body"]) is type(body), doc


def test_post_creates_queue_lazily(api):
    assert_error(api.get("/v2/queues/lazy"), 404)
    api.post_bodies("lazy", ["x"])
    assert api.get("/v2/queues/lazy").status_code == 200


def test_post_default_ttl_3600(api):
    mid = api.post_bodies("dttl", ["x"])[0]
    assert api.get(msgs_path("dttl") + "/" + mid).json()["ttl"] == 3600


def test_post_uses_queue_default_ttl(api):
    api.create_queue("qttl", {"_default_message_ttl": 999})
    mid = api.post_bodies("qttl", ["x"])[0]
    assert api.get(msgs_path("qttl") + "/" + mid).json()["ttl"] == 999


@pytest.mark.parametrize("ttl", [60, 1209600])
def test_post_ttl_bounds_accepted(api, ttl):
    mid = api.post_messages("ttlok", [{"body": 1, "ttl": ttl}])[0]
    assert api.get(msgs_path("ttlok") + "/" + mid).json()["ttl"] == ttl


@pytest.mark.parametrize("ttl", [-1, 0, 59, 1209601, 10 ** 12, "3600", 60.5, None])
def test_post_bad_ttl_400(api, ttl):
    r = api.post(msgs_path("ttlbad"), json={"messages": [{"body": 1, "ttl": ttl}]})
    assert_error(r, 400)
    assert list_page(api, "ttlbad", echo="true")["messages"] == []


def test_post_one_bad_ttl_rejects_whole_batch(api):
    r = api.post(msgs_path("batchbad"), json={"messages": [
        {"body": 1, "ttl": 100}, {"body": 2, "ttl": 5}]})
    assert_error(r, 400)
    assert list_page(api, "batchbad", echo="true")["messages"] == []


def test_post_delay_dropped_on_queue_without_default_delay(api):
    api.post_messages("nodelay", [{"body": "now", "delay": 300}])
    doc = list_page(api, "nodelay", echo="true")
    assert [m["body"] for m in doc["messages"]] == ["now"], doc


@pytest.mark.parametrize("doc", [
    {"messages": [{"ttl": 60}]},                  # body required
    {"messages": [{}]},
    {"messages": {"body": 1}},                    # must be an array even for one message
    {"messages": "body"},
    {"messages": [1, 2]},                         # each message is an object
    {"messages": []},                             # nothing to enqueue
    {},                                           # no messages key
    [{"body": 1, "ttl": 60}],                     # bare array is the v1.0 shape
])
def test_post_bad_document_400(api, doc):
    r = api.post(msgs_path("badpost"), json=doc)
    assert_error(r, 400)


@pytest.mark.parametrize("raw", [b"", b"[", b".", b"{\"messages\": [{\"body\": 1}]",
                                 b"{\"overflow\": 9223372036854775808}",
                                 b"{\"messages\": [{\"body\": 1, \"ttl\": 9223372036854775808}]}"])
def test_post_malformed_or_unsupported_json_400(api, raw):
    r = api.post(msgs_path("badjson"), data=raw, headers={"Content-Type": "application/json"})
    assert_error(r, 400)


def sized_post(size):
    """A valid message POST body of exactly `size` bytes."""
    head, tail = '{"messages": [{"body": "', '", "ttl": 300}]}'
    pad = size - len(head) - len(tail)
    assert pad > 0
    raw = (head + "x" * pad + tail).encode()
    assert len(raw) == size
    return raw


def test_post_body_at_limit_accepted(api):
    raw = sized_post(MAX_POST)
    r = api.post(msgs_path("atlimit"), data=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 201, describe(r)
    mid = r.json()["resources"][0].rsplit("/", 1)[-1]
    got = api.get(msgs_path("atlimit") + "/" + mid).json()
    assert got["body"] == json.loads(raw)["messages"][0]["body"]


@pytest.mark.parametrize("ctype", ["application/json; charset=utf-8", "APPLICATION/JSON", None])
def test_post_content_type_variants_accepted(api, ctype):
    raw = json.dumps({"messages": [{"body": "ct"}]}).encode()
    h = {} if ctype is None else {"Content-Type": ctype}
    if ctype is None:
        # requests adds no Content-Type for bytes data; make sure of it
        req = api.session.prepare_request(requests.Request(
            "POST", api.url(msgs_path("ctype")), data=raw, headers=api.headers()))
        assert "Content-Type" not in req.headers
        r = api.session.send(req, timeout=30)
    else:
        r = api.post(msgs_path("ctype"), data=raw, headers=h)
    assert r.status_code == 201, describe(r)


def chunks(raw, size=4096):
    for i in range(0, len(raw), size):
        yield raw[i:i + size]


def test_post_chunked_body(api):
    # no Content-Length: the server either reads the chunked body or asks for a length
    raw = json.dumps({"messages": [{"body": "chunked"}]}).encode()
    r = api.post(msgs_path("chunked"), data=chunks(raw, 7),
                 headers={"Content-Type": "application/json"})
    assert r.request.headers.get("Transfer-Encoding") == "chunked"
    if r.status_code != 201:
        assert_error(r, 411)
    else:
        assert [m["body"] for m in list_page(api, "chunked", echo="true")["messages"]] == \
            ["chunked"]


def test_post_chunked_body_over_limit_rejected(api, base):
    # without Content-Length the size limit must still hold
    raw = sized_post(MAX_POST + 50000)
    try:
        r = api.post(msgs_path("chunkbig"), data=chunks(raw),
                     headers={"Content-Type": "application/json"})
    except requests.ConnectionError:
        r = None
    if r is not None:
        assert_error(r, (400, 411, 413))
    assert_alive(base)
    assert list_page(api, "chunkbig", echo="true")["messages"] == []


def test_post_body_over_limit_rejected(api):
    # Zaqar's validator answers 400 (message_length); 413 is also a fair HTTP answer.
    r = api.post(msgs_path("overlimit"), data=sized_post(MAX_POST + 1),
                 headers={"Content-Type": "application/json"})
    assert_error(r, (400, 413))
    assert list_page(api, "overlimit", echo="true")["messages"] == []


def test_post_body_far_over_limit_rejected(api, base):
    # A server may answer from Content-Length and close before reading 4 MiB; the
    # client then sees a reset instead of the reply. That is acceptable as long as
    # nothing was stored and the server lives on; a reply must be a JSON 4xx.
    try:
        r = api.post(msgs_path("wayover"), data=sized_post(4 * 1024 * 1024),
                     headers={"Content-Type": "application/json"})
    except requests.ConnectionError:
        r = None
    if r is not None:
        assert_error(r, (400, 413))
    assert_alive(base)
    assert list_page(api, "wayover", echo="true")["messages"] == []


def test_post_respects_queue_max_messages_post_size(api):
    api.create_queue("small", {"_max_messages_post_size": 1023})
    r = api.post(msgs_path("small"), json={"messages": [{"body": {"key": "a" * 1204}}]})
    assert_error(r, (400, 413))
    r = api.post(msgs_path("small"), json={"messages": [{"body": {"key": "a" * 100}}]})
    assert r.status_code == 201, describe(r)


def test_post_many_messages_in_one_request(api):
    # the code has no count limit; only the body size is limited
    ids = api.post_bodies("many", list(range(50)))
    assert len(set(ids)) == 50


# --- list ------------------------------------------------------------------

def test_list_missing_queue_200_empty(api):
    doc = list_page(api, "nonexistent")
    assert doc == {"messages": [], "links": []}


def test_list_shape_and_order(api):
    ids = api.post_bodies("lo", ["a", "b", "c"])
    doc = list_page(api, "lo", echo="true")
    assert [m["id"] for m in doc["messages"]] == ids
    for m in doc["messages"]:
        assert set(("id", "href", "ttl", "age", "body")) <= set(m), m
        assert urlsplit(m["href"]).path == "/v2/queues/lo/messages/" + m["id"]
        assert claim_id_from_href(m["href"]) is None
    assert doc["links"][0]["rel"] == "next"


def test_list_echo(base, api):
    api.post_bodies("echo", ["mine"])
    assert list_page(api, "echo")["messages"] == [], "echo defaults to false"
    assert list_page(api, "echo", echo="false")["messages"] == []
    assert [m["body"] for m in list_page(api, "echo", echo="true")["messages"]] == ["mine"]
    other = Api(base, project=api.project)  # same tenant, another Client-ID
    assert [m["body"] for m in list_page(other, "echo")["messages"]] == ["mine"]


def test_list_default_limit_10_and_max_20(api):
    api.post_bodies("lim", list(range(25)))
    assert len(list_page(api, "lim", echo="true")["messages"]) == 10
    assert len(list_page(api, "lim", echo="true", limit=20)["messages"]) == 20
    assert len(list_page(api, "lim", echo="true", limit=1)["messages"]) == 1


@pytest.mark.parametrize("limit", ["0", "21", "-3", "ten", "99999999999999999999999"])
def test_list_bad_limit_400(api, limit):
    assert_error(api.get(msgs_path("lim"), params={"limit": limit, "echo": "true"}), 400)


def test_list_marker_paging_no_dupes_no_gaps(api):
    ids = api.post_bodies("page", ["m%02d" % i for i in range(25)])
    got = list_all(api, "page", echo="true", limit=7)
    assert [m["id"] for m in got] == ids
    assert [m["body"] for m in got] == ["m%02d" % i for i in range(25)]


def test_list_next_link_keeps_parameters(api):
    api.post_bodies("keep", list(range(5)))
    doc = list_page(api, "keep", echo="true", limit=2)
    q = parse_qs(urlsplit(doc["links"][0]["href"]).query)
    assert "marker" in q
    assert q.get("limit") == ["2"], q
    assert q.get("echo") in (["true"], ["True"]), q


def test_list_include_claimed(api):
    ids = api.post_bodies("incl", list(range(5)))
    r = api.claim("incl", limit=2)
    assert r.status_code == 201, describe(r)
    cid = urlsplit(r.headers["Location"]).path.rsplit("/", 1)[-1]
    claimed = {m["id"] for m in r.json()["messages"]}
    assert claimed == set(ids[:2]), "claims take the oldest messages first"
    visible = list_page(api, "incl", echo="true")["messages"]
    assert [m["id"] for m in visible] == ids[2:]
    everything = list_page(api, "incl", echo="true", include_claimed="true")["messages"]
    assert [m["id"] for m in everything] == ids
    for m in everything:
        want = cid if m["id"] in claimed else None
        assert claim_id_from_href(m["href"]) == want, m


# --- get by id / ids -------------------------------------------------------

def test_get_unknown_message_404(api):
    api.post_bodies("g404", [1])
    assert_error(api.get(msgs_path("g404") + "/a"), 404)
    assert_error(api.get(msgs_path("notthere") + "/a"), 404)


def test_get_by_ids(api):
    ids = api.post_bodies("byids", ["a", "b", "c"])
    r = api.get(msgs_path("byids"), params=ids_qs(ids[:2]))
    assert r.status_code == 200, describe(r)
    got = r.json()["messages"]
    assert sorted(m["id"] for m in got) == sorted(ids[:2])
    for m in got:
        assert urlsplit(m["href"]).path == "/v2/queues/byids/messages/" + m["id"]


def test_get_by_ids_ignores_echo(api):
    ids = api.post_bodies("byecho", ["a"])
    r = api.get(msgs_path("byecho"), params={"ids": ids[0], "echo": "false"})
    assert r.status_code == 200 and len(r.json()["messages"]) == 1, describe(r)


def test_get_by_ids_ignores_unknown_404_when_none(api):
    ids = api.post_bodies("byunk", ["a", "b"])
    assert api.delete(msgs_path("byunk") + "/" + ids[1]).status_code == 204
    r = api.get(msgs_path("byunk"), params=ids_qs(ids))
    assert r.status_code == 200, describe(r)
    assert [m["id"] for m in r.json()["messages"]] == [ids[0]]
    assert_error(api.get(msgs_path("byunk"), params={"ids": ids[1]}), 404)
    assert_error(api.get(msgs_path("notthere"), params="ids=a,b,c"), 404)


def test_get_by_ids_max_20(api):
    ids = api.post_bodies("ids20", list(range(21)))
    r = api.get(msgs_path("ids20"), params=ids_qs(ids[:20]))
    assert r.status_code == 200 and len(r.json()["messages"]) == 20, describe(r)
    assert_error(api.get(msgs_path("ids20"), params=ids_qs(ids)), 400)
    assert_error(api.get(msgs_path("ids20"), params=ids_qs([ids[0]] * 21)), 400)


# --- delete by id ----------------------------------------------------------

def test_delete_unclaimed_message_204_and_again_204(api):
    mid = api.post_bodies("del", ["x"])[0]
    path = msgs_path("del") + "/" + mid
    assert api.get(path).status_code == 200
    r = api.delete(path)
    assert r.status_code == 204, describe(r)
    assert_error(api.get(path), 404)
    assert api.delete(path).status_code == 204


def test_delete_claimed_message_claim_id_rules(api):
    ids = api.post_bodies("dc", ["x", "y"])
    r = api.claim("dc", limit=1)
    assert r.status_code == 201, describe(r)
    href = r.json()["messages"][0]["href"]
    mid, cid = message_id_from_href(href), claim_id_from_href(href)
    assert mid == ids[0] and cid
    path = msgs_path("dc") + "/" + mid
    # claimed, no claim_id: 403
    assert_error(api.delete(path), 403)
    # claimed, a claim id that does not exist: 400
    assert_error(api.delete(path, params={"claim_id": "invalid"}), 400)
    assert api.get(path).status_code == 200, "the message must survive failed deletes"
    # unclaimed message with a claim_id: 400, and it stays
    other = msgs_path("dc") + "/" + ids[1]
    assert_error(api.delete(other, params={"claim_id": cid}), 400)
    assert api.get(other).status_code == 200
    # the right claim: 204, gone
    r = api.delete(path, params={"claim_id": cid})
    assert r.status_code == 204, describe(r)
    assert_error(api.get(path), 404)


def test_delete_with_released_claim_400(api):
    mid = api.post_bodies("rel", ["x"])[0]
    r = api.claim("rel")
    cid = claim_id_from_href(r.json()["messages"][0]["href"])
    assert api.delete(r.headers["Location"]).status_code == 204
    assert_error(api.delete(msgs_path("rel") + "/" + mid, params={"claim_id": cid}), 400)
    assert api.get(msgs_path("rel") + "/" + mid).status_code == 200


def test_delete_missing_message_in_missing_queue_204(api):
    assert api.delete(msgs_path("nowhere") + "/abc").status_code == 204


# --- bulk delete -----------------------------------------------------------

def test_bulk_delete_by_ids(api):
    ids = api.post_bodies("bulk", list(range(5)))
    r = api.delete(msgs_path("bulk"), params=ids_qs(ids[:3]))
    assert r.status_code == 204, describe(r)
    assert_error(api.get(msgs_path("bulk"), params=ids_qs(ids[:3])), 404)
    left = list_page(api, "bulk", echo="true")["messages"]
    assert [m["id"] for m in left] == ids[3:]
    # unknown ids are fine, even after the queue is gone
    assert api.delete(msgs_path("bulk"), params=ids_qs(ids[:3])).status_code == 204
    assert api.delete("/v2/queues/bulk").status_code == 204
    assert api.delete(msgs_path("bulk"), params=ids_qs(ids)).status_code == 204


def test_bulk_delete_max_20_ids(api):
    ids = api.post_bodies("bulk20", list(range(21)))
    assert_error(api.delete(msgs_path("bulk20"), params=ids_qs(ids)), 400)
    assert len(list_all(api, "bulk20", echo="true")) == 21, "rejected delete removed messages"
    assert api.delete(msgs_path("bulk20"), params=ids_qs(ids[:20])).status_code == 204
    assert [m["id"] for m in list_all(api, "bulk20", echo="true")] == ids[20:]


def test_delete_collection_needs_ids_or_pop(api):
    api.post_bodies("neither", [1, 2])
    assert_error(api.delete(msgs_path("neither")), 400)
    ids = api.post_bodies("neither", [3])
    assert_error(api.delete(msgs_path("neither"), params={"ids": ids[0], "pop": 1}), 400)
    assert len(list_all(api, "neither", echo="true")) == 3


# --- pop -------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 10, 20])
def test_pop_n(api, n):
    ids = api.post_bodies("pop", ["b%d" % i for i in range(n + 2)])
    r = api.delete(msgs_path("pop"), params={"pop": n})
    assert r.status_code == 200, describe(r)
    got = r.json()["messages"]
    assert len(got) == n
    assert [m["id"] for m in got] == ids[:n], "pop takes the oldest first"
    for i, m in enumerate(got):
        assert m["body"] == "b%d" % i
        assert "ttl" in m and "age" in m
    for mid in ids[:n]:
        assert_error(api.get(msgs_path("pop") + "/" + mid), 404)
    assert [m["id"] for m in list_all(api, "pop", echo="true")] == ids[n:]


def test_pop_empty_queue_200_empty(api):
    r = api.delete(msgs_path("popempty"), params={"pop": 1})
    assert r.status_code == 200, describe(r)
    assert r.json()["messages"] == []


def test_pop_skips_claimed(api):
    ids = api.post_bodies("popcl", [1, 2, 3])
    assert api.claim("popcl", limit=1).status_code == 201
    r = api.delete(msgs_path("popcl"), params={"pop": 5})
    assert r.status_code == 200, describe(r)
    assert [m["id"] for m in r.json()["messages"]] == ids[1:]
    assert api.get(msgs_path("popcl") + "/" + ids[0]).status_code == 200


@pytest.mark.parametrize("pop", ["0", "21", "-1", "1000000", "x", ""])
def test_pop_bad_count_400(api, pop):
    api.post_bodies("popbad", [1])
    assert_error(api.delete(msgs_path("popbad"), params={"pop": pop}), 400)
    assert len(list_page(api, "popbad", echo="true")["messages"]) == 1
