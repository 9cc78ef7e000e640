#!/bin/bash
# Start-up time of warren with 1,000,000 stored messages (issue 4).
#
#   bench/recovery.sh            fill once, then RUNS (3) timed restarts
#   COUNT=200000 bench/recovery.sh
#
# Fills one durable queue with COUNT (1,000,000) persistent 100-byte messages
# (the shared amqp-bench, publisher confirms, no consumer), stops warrend
# with SIGTERM, then restarts it RUNS times on the same data dir and measures
# from the exec to:
#   ready   the "warrend ready" log line (recovery done, listeners up)
#   first   the first message a client gets (basic.get, polled from the
#           exec on; not acked, so the store keeps all COUNT)
# plus the core's own "recovered ... in N ms", warrend's RSS once ready, and
# the data dir's size. Every restart is a clean one (SIGTERM); a kill -9
# before it changes only how much WAL there is to replay.
# Env: COUNT, RUNS, WARREND / REV (as bench/lib.sh), WARREN_ARGS, AMQP_BENCH,
# SHARED_DIR, OUT, KEEP=1.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED_DIR=${SHARED_DIR:-$REPO/../shared/bench}
COUNT=${COUNT:-1000000}
RUNS=${RUNS:-3}
Q=recovery

# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"
bench_begin recovery recovery-

WARREN_PID=""
bench_traps

build_amqp_bench
build_warrend

{
  machine_lines
  echo "disk: $(df --output=source,fstype /tmp | tail -1 | xargs) (data dir under /tmp)"
  echo "uptime at start: $(uptime)"
  echo "warren: $(warren_desc); --store rocksdb ${WARREN_ARGS:-}"
  echo "stored: $COUNT persistent messages of 100 bytes in one durable queue"
} > "$OUT/meta.txt"
cat "$OUT/meta.txt" >&2

# shellcheck disable=SC2086
start_warrend --store rocksdb ${WARREN_ARGS:-}
say "filling $Q with $COUNT messages"
"$AMQP_BENCH" --port "$AMQP_PORT" --queue "$Q" --durable --persistent --confirm --confirm-batch 1000 \
  --producers 1 --consumers 0 --size 100 --count "$COUNT" --json > "$OUT/fill.json" 2> "$TMP/fill.err" \
  || { tail -5 "$TMP/fill.err" >&2; say "fill failed"; exit 1; }
stop_warrend
WARREN_PID=""
echo "fill: $($PY -c 'import json,sys; r=json.load(open(sys.argv[1])); print("%d confirmed in %.1f s (%.0f msg/s)" % (r["confirmed"], r["publish_s"], r["publish_rate"]))' "$OUT/fill.json")" >> "$OUT/meta.txt"
echo "data dir: $(du -sh "$TMP/warren-data" | cut -f1)" >> "$OUT/meta.txt"

# One timed start: prints "first_s recovered_ms rss_mib messages".
timed_start() {
  # shellcheck disable=SC2086
  $PY - "$WARREND" "$TMP/warren-data" "$Q" "$COUNT" ${WARREN_ARGS:-} <<'EOF'
import os, re, socket, subprocess, sys, time
import pika
binary, data, q, count, extra = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:]
def port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
http, amqp = port(), port()
log = open(os.path.join(data, "..", "recovery.log"), "w+")
t0 = time.monotonic()
p = subprocess.Popen([binary, "--store", "rocksdb", "--data", data, "--http", "127.0.0.1:%d" % http,
                      "--amqp", "127.0.0.1:%d" % amqp] + extra, stdout=log, stderr=log)
first = None
while first is None:
    if p.poll() is not None:
        sys.exit("warrend exited: %s" % open(log.name).read()[-2000:])
    try:
        c = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", amqp, connection_attempts=1,
                                                              socket_timeout=5))
    except Exception:
        time.sleep(0.005)
        continue
    ch = c.channel()
    while first is None:
        m, _, body = ch.basic_get(q, auto_ack=False)
        if m is not None:
            first = time.monotonic() - t0
            n = m.message_count + 1
    c.close()
text = open(log.name).read()
rec = re.search(r"recovered \d+ queues and (\d+) messages in (\d+) ms", text)
rss = int(re.search(r"VmRSS:\s+(\d+)", open("/proc/%d/status" % p.pid).read()).group(1)) / 1024
p.terminate(); p.wait(30)
print("%.3f %s %.0f %d" % (first, rec.group(2) if rec else "-", rss, n))
EOF
}

# "warrend ready" from the exec: poll the log (5 ms steps) in a second pass.
ready_time() {
  # shellcheck disable=SC2086
  $PY - "$WARREND" "$TMP/warren-data" ${WARREN_ARGS:-} <<'EOF'
import os, socket, subprocess, sys, time
binary, data, extra = sys.argv[1], sys.argv[2], sys.argv[3:]
def port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
path = os.path.join(data, "..", "ready.log")
log = open(path, "w")
t0 = time.monotonic()
p = subprocess.Popen([binary, "--store", "rocksdb", "--data", data, "--http", "127.0.0.1:%d" % port(),
                      "--amqp", "127.0.0.1:%d" % port()] + extra, stdout=log, stderr=log)
while "warrend ready" not in open(path).read():
    if p.poll() is not None:
        sys.exit("warrend exited: %s" % open(path).read()[-2000:])
    time.sleep(0.005)
t = time.monotonic() - t0
p.terminate(); p.wait(30)
print("%.3f" % t)
EOF
}

echo "| run | ready s | first message s | recovered (core) ms | RSS after recovery MiB | messages |" > "$TMP/table"
echo "|---:|---:|---:|---:|---:|---:|" >> "$TMP/table"
for run in $(seq 1 "$RUNS"); do
  say "run $run/$RUNS (load $(cut -d' ' -f1-3 /proc/loadavg))"
  ready=$(ready_time)
  read -r first rec rss n < <(timed_start)
  echo "| $run | $ready | $first | $rec | $rss | $n |" >> "$TMP/table"
  tail -1 "$TMP/table" >&2
done
echo "uptime at end: $(uptime)" >> "$OUT/meta.txt"

{
  echo "# Recovery benchmark $STAMP"
  echo
  sed 's/^/    /' "$OUT/meta.txt"
  echo
  cat "$TMP/table"
} > "$OUT/summary.md"
cat "$OUT/summary.md"
say "results in $OUT"
