#!/usr/bin/env python3
"""Summary tables for bench/durable.sh: medians of the runs per (case, broker).

  durable_report.py RAW_DIR --cases "P1 P4 R" --brokers "warren rabbitmq"

RAW_DIR holds <broker>-<case>-r<run>.json (one amqp-bench --json line),
<broker>-<case>-r<run>.perf (perf stat -x, counts of the broker's fsync and
fdatasync calls during that run) and, for warren, <...>.store0 and .store1
(its warren_store_* series in GET /metrics before and after the run: the
WAL syncs RocksDB counted itself).
"""

import argparse
import glob
import json
import os
import statistics

CASE_DESC = {
    "P1": "1 producer, 1 KiB",
    "P4": "4 producers, 1 KiB",
    "R": "1 producer, 100 B",
}


ROCKS_SYNCS = "warren_store_rocksdb_wal_syncs_total"


def store_series(path):
    """{name: value} of a scrape's warren_store_* lines; {} if none."""
    out = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2:
                    out[parts[0]] = float(parts[1])
    return out


def load(raw, broker, case):
    runs = []
    for path in sorted(glob.glob(os.path.join(raw, "%s-%s-r*.json" % (broker, case)))):
        with open(path) as f:
            text = f.read().strip()
        if not text:
            continue
        r = json.loads(text)
        perf = path[:-len(".json")] + ".perf"
        syncs = 0
        if os.path.exists(perf):
            with open(perf) as f:
                syncs = sum(int(line.split(",")[0]) for line in f if line[:1].isdigit())
        secs = r.get("elapsed_s") or 0
        s0 = store_series(path[:-len(".json")] + ".store0")
        s1 = store_series(path[:-len(".json")] + ".store1")
        rocks = s1[ROCKS_SYNCS] - s0[ROCKS_SYNCS] if ROCKS_SYNCS in s0 and ROCKS_SYNCS in s1 \
            else None
        runs.append({
            "confirmed": r.get("publish_rate", 0.0),
            "consumed": r.get("consume_rate", 0.0),
            "syncs_s": syncs / secs if secs else 0.0,
            "syncs_msg": syncs / r["published"] if r.get("published") else 0.0,
            "rocks_s": rocks / secs if rocks is not None and secs else None,
            "rocks_msg": rocks / r["published"] if rocks is not None and r.get("published")
            else None,
            "cpu": r.get("broker_cpu_s", -1),
            "status": r.get("status", "?"),
        })
    return runs


def med(runs, key):
    vals = [r[key] for r in runs if r[key] is not None]
    return statistics.median(vals) if vals else float("nan")


def fmt(v, spec):
    return "-" if v != v else spec.format(v)  # NaN: not measured


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("raw")
    ap.add_argument("--cases", default="P1 P4 R")
    ap.add_argument("--brokers", default="warren rabbitmq")
    a = ap.parse_args()
    brokers = a.brokers.split()
    print("Medians of the runs; msgs/s as amqp-bench counts them (confirmed = publish rate with "
          "every message confirmed; consumed = end to end). Syncs: the broker's fsync + "
          "fdatasync calls (perf) per second of the run and per message published; RocksDB: "
          "the WAL syncs RocksDB counted itself (warren's /metrics) over the same run.")
    print()
    print("| case | broker | runs | confirmed msgs/s | consumed msgs/s | syncs/s | syncs/msg "
          "| RocksDB syncs/s | RocksDB syncs/msg | broker CPU s | status |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    ratios = []
    for c in a.cases.split():
        res = {}
        for b in brokers:
            runs = load(a.raw, b, c)
            res[b] = runs
            if not runs:
                continue
            print("| %s %s | %s | %d | %s | %s | %s | %.3f | %s | %s | %.1f | %s |" % (
                c, CASE_DESC.get(c, ""), b, len(runs), "{:,.0f}".format(med(runs, "confirmed")),
                "{:,.0f}".format(med(runs, "consumed")), "{:,.0f}".format(med(runs, "syncs_s")),
                med(runs, "syncs_msg"), fmt(med(runs, "rocks_s"), "{:,.0f}"),
                fmt(med(runs, "rocks_msg"), "{:.3f}"), med(runs, "cpu"),
                ",".join(sorted({r["status"] for r in runs}))))
        if res.get("warren") and res.get("rabbitmq"):
            ratios.append((c, med(res["warren"], "confirmed") / med(res["rabbitmq"], "confirmed"),
                           med(res["warren"], "consumed") / med(res["rabbitmq"], "consumed")))
    if ratios:
        print()
        print("| case | warren / RabbitMQ confirmed | warren / RabbitMQ consumed | target |")
        print("|---|---:|---:|---|")
        for c, rc, rs in ratios:
            print("| %s | %.2fx | %.2fx | >= 2x: %s |" % (c, rc, rs, "met" if rc >= 2 else "missed"))


if __name__ == "__main__":
    main()
