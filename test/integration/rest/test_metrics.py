"""GET /metrics on the REST port: Prometheus text exposition format with a
warren_queue_messages gauge per queue, labelled with its tenant and queue.

Contract: DESIGN.md "Process contract" (`GET /metrics` (Prometheus text) on the REST port).
"""

import re

import requests

from warren import ids_qs, Api, describe

# metric_name{label="value",...} value [timestamp]
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+-?\d+)?$')
LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)')


def parse_labels(text):
    labels, pos = {}, 0
    while pos < len(text):
        m = LABEL.match(text, pos)
        assert m, "bad label set: %r" % text
        labels[m.group(1)] = m.group(2).replace('\\"', '"').replace("\\n", "\n") \
            .replace("\\\\", "\\")
        pos = m.end()
    return labels


def parse_prometheus(text):
    """[(name, labels, value)]; asserts every line is valid exposition format."""
    samples = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* ", line) \
                or not re.match(r"^# (HELP|TYPE)", line), line
            continue
        m = SAMPLE.match(line)
        assert m, "not a Prometheus sample line: %r" % line
        value = float(m.group(4))  # also accepts NaN, +Inf
        samples.append((m.group(1), parse_labels(m.group(3) or ""), value))
    return samples


def scrape(base):
    r = requests.get(base + "/metrics", timeout=10)
    assert r.status_code == 200, describe(r)
    ctype = r.headers.get("Content-Type", "")
    assert ctype.startswith("text/plain"), ctype
    return parse_prometheus(r.text)


def queue_messages(samples, tenant, queue):
    return [v for name, labels, v in samples
            if name == "warren_queue_messages"
            and labels.get("tenant") == tenant and labels.get("queue") == queue]


def test_metrics_prometheus_text_with_queue_messages(base):
    api = Api(base)
    api.post_bodies("metered", list(range(7)))
    other = Api(base)
    other.post_bodies("metered", [1, 2])
    samples = scrape(base)
    assert samples, "no samples at all"
    assert queue_messages(samples, api.project, "metered") == [7.0], \
        [s for s in samples if s[0] == "warren_queue_messages"][:20]
    assert queue_messages(samples, other.project, "metered") == [2.0]


def test_metrics_count_follows_deletes(base):
    api = Api(base)
    ids = api.post_bodies("shrinking", list(range(5)))
    assert api.delete("/v2/queues/shrinking/messages", params=ids_qs(ids[:3])) \
        .status_code == 204
    assert queue_messages(scrape(base), api.project, "shrinking") == [2.0]


def test_metrics_type_declared(base):
    r = requests.get(base + "/metrics", timeout=10)
    assert re.search(r"^# TYPE warren_queue_messages (gauge|untyped)$", r.text, re.M), \
        "no TYPE line for warren_queue_messages"


def store_value(samples, name):
    values = [v for n, labels, v in samples if n == name]
    assert len(values) == 1, (name, values)
    return values[0]


def test_metrics_store_group_commit(base):
    """Posts to a durable queue are stored: writes and syncs grow, and the
    store is not full. With several posts in flight at once, syncs may be
    fewer than writes (group commit); never more."""
    api = Api(base)
    before = scrape(base)
    w0 = store_value(before, "warren_store_writes_total")
    s0 = store_value(before, "warren_store_syncs_total")
    assert api.put("/v2/queues/stored", json={"_durable": True}).status_code in (201, 204)
    for i in range(5):
        api.post_bodies("stored", [i])
    after = scrape(base)
    writes = store_value(after, "warren_store_writes_total") - w0
    syncs = store_value(after, "warren_store_syncs_total") - s0
    assert writes >= 6, writes  # the queue record and five posts
    assert 1 <= syncs <= writes, (syncs, writes)
    assert store_value(after, "warren_store_full") == 0
    assert store_value(after, "warren_store_written_bytes_total") > 0
