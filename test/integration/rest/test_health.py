"""Versions document, home document, ping and health.

Spec: /work/shared/reference/zaqar-v2.md (`GET /`, `GET /v2/`, `/v2/ping`, `/v2/health`);
DESIGN.md process contract (`GET /v2/health` on the REST port).
"""

import requests

from warren import headers, describe


def test_root_lists_versions_300(base):
    r = requests.get(base + "/", timeout=10)
    assert r.status_code == 300, describe(r)
    doc = r.json()
    v2 = [v for v in doc["versions"] if v["id"] == "2"]
    assert len(v2) == 1, doc
    assert v2[0]["status"] == "CURRENT"
    assert isinstance(v2[0]["media-types"], list) and v2[0]["media-types"]
    assert {"href": "/v2/", "rel": "self"} in v2[0]["links"], v2[0]


def test_home_document_200(base):
    r = requests.get(base + "/v2/", headers=headers("p1"), timeout=10)
    assert r.status_code == 200, describe(r)
    doc = r.json()
    assert isinstance(doc.get("resources"), dict) and doc["resources"], doc


def test_ping_204(base):
    r = requests.get(base + "/v2/ping", headers=headers("p1"), timeout=10)
    assert r.status_code == 204, describe(r)
    assert not r.content


def test_ping_head_204(base):
    r = requests.head(base + "/v2/ping", headers=headers("p1"), timeout=10)
    assert r.status_code == 204, describe(r)


def test_health_200_json(base):
    r = requests.get(base + "/v2/health", headers=headers("p1"), timeout=10)
    assert r.status_code == 200, describe(r)
    doc = r.json()
    assert isinstance(doc, dict) and doc
    if "catalog_reachable" in doc:
        assert doc["catalog_reachable"] is True, doc


def test_responses_are_json(api):
    api.create_queue("ct")
    for path in ("/v2/queues", "/v2/queues/ct", "/v2/queues/ct/stats",
                 "/v2/queues/ct/messages"):
        r = api.get(path)
        assert r.status_code == 200, describe(r)
        assert r.headers.get("Content-Type", "").startswith("application/json"), \
            (path, r.headers.get("Content-Type"))
