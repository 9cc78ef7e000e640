#!/bin/bash
# Persistent messages with publisher confirms: warren (--store rocksdb) vs
# RabbitMQ (durable queue, persistent messages), same disk, same run (issue 4).
#
#   bench/durable.sh              3 runs of every case, brokers alternating
#   QUICK=1 bench/durable.sh      1 run, small counts
#
# Cases (the shared amqp-bench, one consumer acking each message, prefetch
# 1000, confirm window 1000 per producer, --persistent --durable):
#   P1   1 producer,  1 KiB
#   P4   4 producers, 1 KiB
#   R    1 producer,  100 B (the issue's RabbitMQ reference case)
# Both brokers keep their data under /tmp, on the same disk (not tmpfs);
# warren runs with its default fsync policy (batch: a confirm waits for the
# group's fdatasync). Every run also counts the broker's fsync + fdatasync
# calls with `perf stat` on syscall tracepoints (same method for both), so
# syncs/s and syncs per message come from the kernel, not from the brokers'
# own counters. For warren, the WAL syncs RocksDB itself counted
# (warren_store_rocksdb_wal_syncs_total in GET /metrics, scraped before and
# after each run) are reported beside them.
#
# Env: RUNS (3; QUICK: 1), CASES ("P1 P4 R"), WARREND (a binary instead of
# building one in Release with bench/lib.sh), REV, WARREN_ARGS (more warrend
# flags), AMQP_BENCH (a built amqp-bench), SHARED_DIR, OUT, KEEP=1,
# WARREN=0 / RABBITMQ=0.
# Results: bench/results/durable-<UTC stamp>/ (summary.md; raw/ not committed).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED_DIR=${SHARED_DIR:-$REPO/../shared/bench}
BENCH_SRC=$SHARED_DIR/amqp-bench/amqp-bench.c
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then RUNS=${RUNS:-1}; else RUNS=${RUNS:-3}; fi
CASES=${CASES:-P1 P4 R}
PREFIX=durable-; [ "$QUICK" = 1 ] && PREFIX=durable-quick-
# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"
bench_begin durable "$PREFIX"

WARREN_PID=""; RABBITMQ_RUN=""; RABBITMQ_PID=""
bench_traps

build_amqp_bench
command -v perf >/dev/null || { say "no perf (deploy/install-deps.sh --bench amqp installs linux-perf)"; exit 1; }

count_of() {  # case -> messages per run
  case $1 in
    P1|P4) [ "$QUICK" = 1 ] && echo 20000 || echo 200000 ;;
    R) [ "$QUICK" = 1 ] && echo 20000 || echo 300000 ;;
  esac
}
args_of() {
  local common="--consumers 1 --confirm --confirm-batch 1000 --persistent --durable --prefetch 1000 --ack-every 1"
  case $1 in
    P1) echo "--producers 1 --size 1024 $common" ;;
    P4) echo "--producers 4 --size 1024 $common" ;;
    R) echo "--producers 1 --size 100 $common" ;;
  esac
}

# --- the brokers -----------------------------------------------------------
BROKERS=""
if [ "${WARREN:-1}" != 0 ]; then
  build_warrend
  # shellcheck disable=SC2086
  start_warrend --store rocksdb ${WARREN_ARGS:-}
  BROKERS="warren"
fi
add_rabbitmq

{
  machine_lines
  echo "disk: $(df --output=source,fstype /tmp | tail -1 | xargs) (both brokers' data under /tmp)"
  echo "uptime at start: $(uptime)"
  [ -n "$WARREN_PID" ] && echo "warren: $(warren_desc); --store rocksdb ${WARREN_ARGS:-} (data $TMP/warren-data)"
  [ -n "$RABBITMQ_PID" ] && echo "rabbitmq: rabbitmq-server $RABBITMQ_VERSION (Debian), private node, default config (classic queues), data $RABBITMQ_RUN"
  echo "client: amqp-bench ($BENCH_SRC); syncs: perf stat -e syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync -p BROKER; warren also: warren_store_rocksdb_wal_syncs_total from GET /metrics before and after each run"
  echo "runs: $RUNS, cases $CASES$([ "$QUICK" = 1 ] && echo ', QUICK (small counts)')"
} > "$OUT/meta.txt"
cat "$OUT/meta.txt" >&2

# warren's store series (warren_store_*), for the delta over a run.
scrape_store() {  # file
  curl -s -m 10 "$WARREN_URL/metrics" | grep '^warren_store_' > "$1" || true
}

# One case on one broker: amqp-bench under a perf count of the broker's syncs.
run_case() {  # broker case run
  local b=$1 c=$2 run=$3 port pid q tag
  if [ "$b" = warren ]; then port=$AMQP_PORT; pid=$WARREN_PID; else port=$RABBITMQ_PORT; pid=$RABBITMQ_PID; fi
  kill -0 "$pid" 2>/dev/null || { say "$b (pid $pid) died"; exit 1; }
  tag=$b-$c-r$run
  q=durable-$c-$run-$$
  say "run $run/$RUNS $c $b (load $(cut -d' ' -f1-3 /proc/loadavg))"
  echo "$tag $(cat /proc/loadavg)" >> "$RAW/load.txt"
  perf stat -x, -e syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync -p "$pid" \
    -o "$RAW/$tag.perf" &
  local perf_pid=$!
  sleep 0.5   # perf attaches
  [ "$b" = warren ] && scrape_store "$RAW/$tag.store0"
  # shellcheck disable=SC2046
  if ! "$AMQP_BENCH" --port "$port" --queue "$q" --delete-queue-after --count "$(count_of "$c")" \
       $(args_of "$c") --broker-pid "$pid" --json > "$RAW/$tag.json" 2> "$RAW/$tag.err"; then
    failed=$((failed + 1)); say "$tag failed (see $RAW/$tag.err)"
  fi
  [ "$b" = warren ] && scrape_store "$RAW/$tag.store1"
  kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null || true
  $PY - "$RAW/$tag.json" "$RAW/$tag.perf" "$RAW/$tag.store0" "$RAW/$tag.store1" <<'EOF' >&2 || true
import json, os, sys
r = json.loads(open(sys.argv[1]).read() or "{}")
syncs = sum(int(l.split(",")[0]) for l in open(sys.argv[2]) if l[:1].isdigit())
def store(path):
    if not os.path.exists(path):
        return {}
    return {l.split()[0]: float(l.split()[1]) for l in open(path) if len(l.split()) == 2}
s0, s1 = store(sys.argv[3]), store(sys.argv[4])
name = "warren_store_rocksdb_wal_syncs_total"
rocks = ", RocksDB counted %d WAL syncs" % (s1[name] - s0[name]) if name in s0 and name in s1 else ""
print("    consumed %.0f msg/s, confirmed %.0f msg/s, %d syncs%s, %s" % (
    r.get("consume_rate", 0), r.get("publish_rate", 0), syncs, rocks, r.get("status")))
EOF
}

failed=0
i=0
for run in $(seq 1 "$RUNS"); do
  for c in $CASES; do
    order=$BROKERS
    [ $(((run + i) % 2)) = 0 ] && order=$(echo "$BROKERS" | tr ' ' '\n' | tac | xargs)
    i=$((i + 1))
    for b in $order; do run_case "$b" "$c" "$run"; sleep 2; done
  done
done
echo "uptime at end: $(uptime)" >> "$OUT/meta.txt"

{
  echo "# Durable benchmark $STAMP"
  echo
  sed 's/^/    /' "$OUT/meta.txt"
  echo
  $PY "$REPO/bench/durable_report.py" "$RAW" --cases "$CASES" --brokers "$BROKERS"
  [ $failed -gt 0 ] && { echo; echo "**$failed run(s) failed; see raw/*.err**"; }
} > "$OUT/summary.md"
echo
cat "$OUT/summary.md"
say "results in $OUT (summary.md; raw/ not committed)"
[ $failed = 0 ]
