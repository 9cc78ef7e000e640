"""Tenancy and the required headers: X-Project-Id isolates queues and messages;
X-Project-Id and Client-ID are required on every /v2 path.

Spec: /work/shared/reference/zaqar-v2.md "Rules for every /v2/* request" (4, 5);
Zaqar zaqar/common/transport/wsgi/helpers.py (require_client_id: uuid.UUID(value),
extract_project_id).
"""

import uuid

import pytest
import requests

from warren import ids_qs, Api, assert_alive, assert_error, describe, headers


def test_projects_do_not_see_each_others_queues(base):
    a, b = Api(base), Api(base)
    a.create_queue("shared-name", {"owner": "a"})
    a.create_queue("only-a")
    assert_error(b.get("/v2/queues/only-a"), 404)
    assert b.get("/v2/queues").json()["queues"] == []
    # the same name in another project is another queue
    r = b.put("/v2/queues/shared-name", json={"owner": "b"})
    assert r.status_code == 201, describe(r)
    assert a.get("/v2/queues/shared-name").json()["owner"] == "a"
    assert b.get("/v2/queues/shared-name").json()["owner"] == "b"
    assert sorted(q["name"] for q in a.get("/v2/queues").json()["queues"]) == \
        ["only-a", "shared-name"]
    # deleting b's queue leaves a's alone
    assert b.delete("/v2/queues/shared-name").status_code == 204
    assert a.get("/v2/queues/shared-name").status_code == 200


def test_projects_do_not_see_each_others_messages(base):
    a, b = Api(base), Api(base)
    ids = a.post_bodies("q", ["secret-1", "secret-2"])
    b.post_bodies("q", ["b-msg"])
    lb = b.get("/v2/queues/q/messages", params={"echo": "true"}).json()["messages"]
    assert [m["body"] for m in lb] == ["b-msg"]
    for mid in ids:
        assert_error(b.get("/v2/queues/q/messages/" + mid), 404)
    assert_error(b.get("/v2/queues/q/messages", params=ids_qs(ids)), 404)
    # b's claims and pops never take a's messages
    r = b.claim("q", limit=20)
    assert r.status_code == 201, describe(r)
    assert [m["body"] for m in r.json()["messages"]] == ["b-msg"]
    assert b.delete("/v2/queues/q/messages", params={"pop": 20}).json()["messages"] == []
    # b deleting a's ids by id or in bulk does nothing to a
    for mid in ids:
        assert b.delete("/v2/queues/q/messages/" + mid).status_code == 204
    assert b.delete("/v2/queues/q/messages", params=ids_qs(ids)).status_code == 204
    b.post("/v2/queues/q/purge")
    s = a.stats("q")
    assert (s["total"], s["free"]) == (2, 2), s
    assert b.stats("q")["total"] == 0


@pytest.mark.parametrize("method,path", [
    ("GET", "/v2/queues"),
    ("PUT", "/v2/queues/hdr"),
    ("GET", "/v2/queues/hdr/messages"),
    ("POST", "/v2/queues/hdr/messages"),
    ("POST", "/v2/queues/hdr/claims"),
    ("GET", "/v2/queues/hdr/stats"),
])
def test_missing_project_id_400(base, method, path):
    h = {"Client-ID": str(uuid.uuid4())}
    body = {"messages": [{"body": 1}]} if path.endswith("messages") and method == "POST" else None
    r = requests.request(method, base + path, headers=h, json=body, timeout=10)
    assert_error(r, 400)


def test_empty_project_id_400(base):
    r = requests.get(base + "/v2/queues", headers=headers(""), timeout=10)
    assert_error(r, 400)


def test_project_id_too_long_400(base):
    r = requests.put(base + "/v2/queues/longproj", headers=headers("p" * 257), timeout=10)
    assert_error(r, 400)
    r = requests.put(base + "/v2/queues/longproj", headers=headers("p" * 256), timeout=10)
    assert r.status_code == 201, describe(r)


@pytest.mark.parametrize("method,path", [
    ("GET", "/v2/queues"),
    ("PUT", "/v2/queues/cid"),
    ("GET", "/v2/queues/cid"),
    ("GET", "/v2/queues/cid/messages"),
    ("POST", "/v2/queues/cid/messages"),
    ("POST", "/v2/queues/cid/claims"),
    ("GET", "/v2/ping"),
])
def test_missing_client_id_400(base, method, path):
    body = {"messages": [{"body": 1}]} if path.endswith("messages") and method == "POST" else None
    r = requests.request(method, base + path, headers={"X-Project-Id": "p1"}, json=body,
                         timeout=10)
    assert_error(r, 400)


@pytest.mark.parametrize("cid", ["", "textid", "0xdeadbeef",
                                 "550893e0-2b6e-11e3-835a-5cf9dd72369",   # one digit short
                                 "550893e0-2b6e-11e3-835a-5cf9dd72369zz",
                                 "g50893e0-2b6e-11e3-835a-5cf9dd723690"])
def test_invalid_client_id_400(base, cid):
    h = {"X-Project-Id": "p1", "Client-ID": cid}
    r = requests.post(base + "/v2/queues/cid/messages", headers=h,
                      json={"messages": [{"body": 1}]}, timeout=10)
    assert_error(r, 400)
    r = requests.get(base + "/v2/queues/cid/messages", headers=h,
                     params={"limit": 3, "echo": "true"}, timeout=10)
    assert_error(r, 400)
    assert_alive(base)


@pytest.mark.parametrize("cid", [str(uuid.uuid4()), uuid.uuid4().hex,
                                 str(uuid.uuid4()).upper()])
def test_client_id_uuid_spellings_accepted(base, cid):
    # Zaqar parses Client-ID with uuid.UUID(), which takes the dashless hex form that
    # python-zaqarclient sends (uuidutils.generate_uuid(dashed=False)).
    h = {"X-Project-Id": "p-uuid", "Client-ID": cid}
    r = requests.post(base + "/v2/queues/uuidq/messages", headers=h,
                      json={"messages": [{"body": 1}]}, timeout=10)
    assert r.status_code == 201, describe(r)
