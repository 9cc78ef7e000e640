"""Hostile and malformed requests: each must get a 4xx with a Zaqar JSON error body
({"title", "description"}), and the server must keep answering ping afterwards.

Spec: /work/shared/reference/zaqar-v2.md "Rules for every /v2/* request" (form
content type 400, Accept 406, headers, queue names), default limits; Zaqar
zaqar/transport/validation.py and common/transport/wsgi/helpers.py.
"""

import json
import socket
from urllib.parse import urlsplit

import pytest
import requests

from warren import Api, assert_alive, assert_error, describe, headers


@pytest.fixture(autouse=True)
def still_alive(base):
    yield
    assert_alive(base)


# --- queue names -----------------------------------------------------------

BAD_NAMES = [
    "Nice-Bo@t",
    "a%20b",                 # space
    "v" * 65,                # too long
    "%FF%FE",                # invalid UTF-8
    "%C0%AF",                # overlong UTF-8 encoding of '/'
    "non-ascii-n%C5%93me",   # valid UTF-8, not ASCII
    "a%00b",                 # NUL
    "a;b",
    "a*b",
    "a%2Fb",                 # encoded slash
    "%F0%9F%92%A9",
]


def raw_request(api, method, path, **kw):
    """Send exactly `path` (already percent-encoded) without requests re-quoting it."""
    req = requests.Request(method, api.base + path, headers=api.headers(kw.pop("headers", None)),
                           **kw)
    prep = api.session.prepare_request(req)
    prep.url = api.base + path
    return api.session.send(prep, timeout=30)


@pytest.mark.parametrize("name", BAD_NAMES)
@pytest.mark.parametrize("method,suffix,body", [
    ("PUT", "", None),
    ("GET", "", None),
    ("POST", "/messages", {"messages": [{"body": 1}]}),
    ("GET", "/messages", None),
    ("POST", "/claims", None),
    ("GET", "/stats", None),
])
def test_bad_queue_name_400(api, name, method, suffix, body):
    r = raw_request(api, method, "/v2/queues/" + name + suffix, json=body)
    # an encoded slash may also be seen as an unknown route
    assert_error(r, (400, 404) if "%2F" in name else 400)
    assert api.get("/v2/queues").json()["queues"] == [], "a bad name created a queue"


def test_queue_name_64_chars_ok_65_not(api):
    r = api.put("/v2/queues/" + "v" * 64)
    assert r.status_code == 201, describe(r)
    assert_error(api.put("/v2/queues/" + "v" * 65), 400)
    assert_error(api.post("/v2/queues/%s/messages" % ("v" * 65),
                          json={"messages": [{"body": 1}]}), 400)


@pytest.mark.parametrize("name", ["a.b", "Nice-Boat_2", "UPPER.lower-9_x", "-", "_", "0"])
def test_good_queue_names_accepted(api, name):
    r = api.put("/v2/queues/" + name)
    assert r.status_code == 201, describe(r)
    assert name in [q["name"] for q in api.get("/v2/queues").json()["queues"]]


# --- routes and methods ----------------------------------------------------

@pytest.mark.parametrize("path", ["/v2/nope", "/v2/queues/q/nope", "/v3/", "/nothing",
                                  "/v2/queues/q/messages/x/y", "/v2/queues/q/claims/c/x",
                                  "/v1.1/queues", "/v1/queues"])
def test_unknown_route_404_json(api, path):
    assert_error(api.get(path), 404)


@pytest.mark.parametrize("method,path", [
    ("POST", "/v2/queues/q"),
    ("PUT", "/v2/queues/q/messages"),
    ("PATCH", "/v2/queues/q/messages/abc"),
    ("PUT", "/v2/queues/q/claims"),
    ("POST", "/v2/queues/q/stats"),
    ("DELETE", "/v2/queues"),
    ("POST", "/v2/ping"),
    ("GET", "/v2/queues/q/purge"),
])
def test_wrong_method_405(api, method, path):
    r = api.request(method, path, json={})
    assert_error(r, 405)
    assert r.headers.get("Allow"), "405 without an Allow header"


# --- content negotiation ---------------------------------------------------

@pytest.mark.parametrize("method,path,body", [
    ("POST", "/v2/queues/form/messages", "messages=hello"),
    ("PUT", "/v2/queues/form", "a=b"),
    ("POST", "/v2/queues/form/claims", "ttl=100"),
])
def test_form_content_type_400(api, method, path, body):
    r = api.request(method, path, data=body,
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_error(r, 400)


def test_accept_text_plain_406(api):
    api.create_queue("acc")
    for path in ("/v2/queues", "/v2/queues/acc", "/v2/queues/acc/messages"):
        assert_error(api.get(path, headers={"Accept": "text/plain"}), 406)


@pytest.mark.parametrize("accept", ["application/json", "*/*", "application/*",
                                    "text/html, application/json;q=0.5"])
def test_accept_allowing_json_ok(api, accept):
    r = api.get("/v2/queues", headers={"Accept": accept})
    assert r.status_code == 200, describe(r)


# --- malformed bodies and wrong types --------------------------------------

@pytest.mark.parametrize("method,path,raw", [
    ("PUT", "/v2/queues/mal", b"{not json"),
    ("PUT", "/v2/queues/mal", b"\xff\xfe\x00"),
    ("POST", "/v2/queues/mal/messages", b"{\"messages\": [{\"body\": \"\xff\"}]}"),
    ("POST", "/v2/queues/mal/messages", b"{\"messages\": [{\"body\": 1}]} trailing"),
    ("POST", "/v2/queues/mal/claims", b"{\"ttl\": 100,}"),
    ("POST", "/v2/queues/mal/purge", b"{\"resource_types\": "),
])
def test_malformed_json_400(api, method, path, raw):
    r = api.request(method, path, data=raw, headers={"Content-Type": "application/json"})
    assert_error(r, 400)


@pytest.mark.parametrize("method,path,doc", [
    ("POST", "/v2/queues/wt/messages", {"messages": [{"body": 1, "ttl": "60"}]}),
    ("POST", "/v2/queues/wt/messages", {"messages": [{"body": 1, "ttl": [60]}]}),
    ("POST", "/v2/queues/wt/messages", {"messages": [{"body": 1, "ttl": 1e100}]}),
    ("POST", "/v2/queues/wt/messages", {"messages": [{"body": 1, "ttl": 10 ** 30}]}),
    ("POST", "/v2/queues/wt/messages", {"messages": [{"body": 1, "ttl": -(10 ** 30)}]}),
    ("POST", "/v2/queues/wt/messages", {"messages": ["body"]}),
    ("POST", "/v2/queues/wt/messages", {"messages": None}),
    ("POST", "/v2/queues/wt/claims", {"ttl": "100", "grace": 60}),
    ("POST", "/v2/queues/wt/claims", {"ttl": 100, "grace": None}),
    ("POST", "/v2/queues/wt/claims", {"ttl": 10 ** 30, "grace": 60}),
    ("POST", "/v2/queues/wt/purge", {"resource_types": "messages"}),
    ("POST", "/v2/queues/wt/purge", {"resource_types": [1]}),
    ("PUT", "/v2/queues/wt", {"_default_message_ttl": 10 ** 30}),
    ("PUT", "/v2/queues/wt", {"_default_message_ttl": -5}),
])
def test_wrong_types_and_absurd_values_400(api, method, path, doc):
    r = api.request(method, path, data=json.dumps(doc),
                    headers={"Content-Type": "application/json"})
    assert_error(r, 400)


@pytest.mark.parametrize("method,path,params", [
    ("GET", "/v2/queues", {"limit": "999999999999999999999999999"}),
    ("GET", "/v2/queues", {"limit": "1e3"}),
    ("GET", "/v2/queues", {"detailed": "maybe"}),
    ("GET", "/v2/queues/lq/messages", {"limit": "4294967297"}),
    ("GET", "/v2/queues/lq/messages", {"limit": "-0x10"}),
    ("GET", "/v2/queues/lq/messages", {"echo": "maybe"}),
    ("GET", "/v2/queues/lq/messages", {"include_claimed": "2"}),
    ("POST", "/v2/queues/lq/claims", {"limit": "18446744073709551617"}),
    ("DELETE", "/v2/queues/lq/messages", {"pop": "18446744073709551617"}),
])
def test_bad_query_values_400(api, method, path, params):
    api.post_bodies("lq", [1])
    assert_error(api.request(method, path, params=params), 400)


# --- deep nesting, big headers ---------------------------------------------

def test_moderate_nesting_accepted(api):
    body = json.loads("[" * 64 + "1" + "]" * 64)
    mid = api.post_messages("nest", [{"body": body}])[0]
    assert api.get("/v2/queues/nest/messages/" + mid).json()["body"] == body


@pytest.mark.parametrize("depth", [20000, 100000])
def test_deep_nesting_rejected(api, depth):
    # under the 256 KiB post limit, so only the nesting can make it fail
    raw = '{"messages": [{"body": ' + "[" * depth + "]" * depth + "}]}"
    assert len(raw) < 262144
    r = api.post("/v2/queues/deep/messages", data=raw,
                 headers={"Content-Type": "application/json"})
    assert_error(r, 400)
    for path in ("/v2/queues/deep", "/v2/queues/deep/claims"):
        r = api.request("PUT" if path.endswith("deep") else "POST", path,
                        data="[" * depth + "]" * depth,
                        headers={"Content-Type": "application/json"})
        assert_error(r, 400)


def test_header_of_64k(api):
    r = api.get("/v2/queues", headers={"X-Junk": "a" * 65536})
    if r.status_code != 200:
        assert_error(r)


def test_many_headers(api):
    extra = {"X-H%d" % i: "v" * 100 for i in range(500)}
    r = api.get("/v2/queues", headers=extra)
    if r.status_code != 200:
        assert_error(r)


def test_garbage_request_line(base):
    host, port = urlsplit(base).hostname, urlsplit(base).port
    for garbage in (b"\x00\x01\x02 garbage\r\n\r\n", b"GET /v2/ping HTTP/9.9\r\n\r\n",
                    b"GET " + b"/a" * 40000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"):
        with socket.create_connection((host, port), timeout=10) as s:
            try:
                s.sendall(garbage)
                s.shutdown(socket.SHUT_WR)
                data = s.recv(4096)
            except OSError:
                data = b""
        # either the server refuses with a status line, or closes; never crashes
        if data:
            assert data.startswith(b"HTTP/"), data[:100]
            status = int(data.split(b" ", 2)[1])
            assert 400 <= status < 500 or status == 505, data[:200]
    assert_alive(base)


def test_truncated_body_then_close(base):
    host, port = urlsplit(base).hostname, urlsplit(base).port
    h = headers("trunc")
    req = ("POST /v2/queues/trunc/messages HTTP/1.1\r\nHost: x\r\n"
           "Content-Type: application/json\r\nContent-Length: 1000\r\n"
           "X-Project-Id: %s\r\nClient-ID: %s\r\n\r\n{\"messages\": [" % (
               h["X-Project-Id"], h["Client-ID"])).encode()
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(req)
    a = Api(base, project="trunc")
    assert a.get("/v2/queues/trunc/messages", params={"echo": "true"}).json()["messages"] == []
