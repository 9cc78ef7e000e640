#!/bin/bash
# AMQP 0-9-1 benchmark: warren vs RabbitMQ, side by side, same run (issue 3).
#
#   bench/amqp.sh              full run: S1..S5 + the 1M-message memory check, 3 runs
#   QUICK=1 bench/amqp.sh      smoke test: 1 run, small counts, no memory check
#
# Builds warrend (Release, into build-bench/) and the shared amqp-bench (from
# SHARED_DIR/amqp-bench/amqp-bench.c into build-bench/amqp-bench), starts
# warrend on free loopback ports with a temp data dir and a private RabbitMQ
# node with bench/rabbitmq/setup.sh, and runs the shared scenarios.sh against
# both one case at a time (RUNS=1 ONLY=Sx, BROKER_PID set), alternating the
# brokers case by case (and which goes first) so machine-load drift hits both
# alike. Results: bench/results/<UTC stamp>/: raw/ (amqp-bench JSON lines,
# scenarios.sh logs, load averages; ignored by git), meta.txt and summary.md
# (targets, every metric with medians and the warren/RabbitMQ ratio), printed.
#
# Env:
#   SHARED_DIR   the shared bench folder (default: ../shared/bench from the repo root)
#   RUNS         runs of every case (3; QUICK: 1)
#   SCENARIOS    "S1 S2 S3 S4 S5"
#   MEMORY       1 = also the memory check (1,000,000 x 100 B queued; RSS); QUICK: 0
#   WARREN=0 / RABBITMQ=0   leave a broker out
#   WARREND      use this warrend binary instead of building one
#   REV          build warren from this git revision (e.g. HEAD) in a temp copy
#   WARREN_STORE warrend --store (default: warrend's own, rocksdb); WARREN_ARGS more flags
#   PAUSE        seconds between cases (scenarios.sh's PAUSE, 2)
#   OUT          results folder (default bench/results/<stamp>, QUICK: .../quick-<stamp>)
#   KEEP=1       keep the temp dir (warren's data dir, logs) and RabbitMQ's run dir
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED_DIR=${SHARED_DIR:-$REPO/../shared/bench}
SCEN_SH=$SHARED_DIR/amqp-bench/scenarios.sh
REPORT=$REPO/bench/amqp_report.py
[ -f "$SCEN_SH" ] || { echo "amqp.sh: no $SCEN_SH (set SHARED_DIR)" >&2; exit 1; }

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then RUNS=${RUNS:-1}; MEMORY=${MEMORY:-0}; else RUNS=${RUNS:-3}; MEMORY=${MEMORY:-1}; fi
SCENARIOS=${SCENARIOS:-S1 S2 S3 S4 S5}
WARREN_STORE=${WARREN_STORE:-}
# (not $(... && echo quick-): a false test there fails the assignment under set -e)
PREFIX=""; [ "$QUICK" = 1 ] && PREFIX=quick-
# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"
bench_begin amqp "$PREFIX"

WARREN_PID=""; RABBITMQ_RUN=""; RABBITMQ_PID=""
bench_traps

build_amqp_bench   # the client

# --- the brokers ---------------------------------------------------------------
BROKERS=""
if [ "${WARREN:-1}" != 0 ]; then
  build_warrend
  # shellcheck disable=SC2086
  start_warrend ${WARREN_STORE:+--store "$WARREN_STORE"} ${WARREN_ARGS:-}
  # /v2/ping answered; the AMQP listener may come a moment later
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$AMQP_PORT") 2>/dev/null && break; sleep 0.1; done
  # the store warren runs with, as it says (its default when WARREN_STORE is empty)
  WARREN_STORE=$(sed -n 's/.*warrend ready .* store=\([^ ]*\).*/\1/p' "$TMP/warrend.log" | head -1)
  BROKERS="warren"
fi
add_rabbitmq

{
  machine_lines
  echo "uptime at start: $(uptime)"
  [ -n "$WARREN_PID" ] && echo "warren: $(warren_desc); store $WARREN_STORE ${WARREN_ARGS:-}"
  [ -n "$RABBITMQ_PID" ] && echo "rabbitmq: rabbitmq-server $RABBITMQ_VERSION (Debian), private node, default config, no plugins"
  echo "client: amqp-bench ($AMQP_BENCH), scenarios.sh one case at a time, brokers alternating"
  echo "runs: $RUNS, scenarios $SCENARIOS$([ "$MEMORY" = 1 ] && echo ' + memory check')$([ "$QUICK" = 1 ] && echo ', QUICK (small counts)')"
} > "$OUT/meta.txt"
cat "$OUT/meta.txt" >&2

# QUICK: amqp-bench takes the last of a repeated option, so these extra options
# (after the scenario's own) shrink the counts
quick_args() {
  [ "$QUICK" = 1 ] || return 0
  case $1 in
    S1|S2) echo --count 100000 ;;
    S3) echo --count 20000 ;;
    S4) echo --count 40000 ;;
    S5) echo --seconds 3 ;;
  esac
}

run_case() {  # broker case run
  local b=$1 c=$2 run=$3 port pid log
  if [ "$b" = warren ]; then port=$AMQP_PORT; pid=$WARREN_PID; else port=$RABBITMQ_PORT; pid=$RABBITMQ_PID; fi
  if ! kill -0 "$pid" 2>/dev/null; then
    say "$b (pid $pid) died"; [ "$b" = warren ] && tail -20 "$TMP/warrend.log" >&2; exit 1
  fi
  echo "$b $c $run $(cat /proc/loadavg)" >> "$RAW/load.txt"
  log=$RAW/$b-$c-r$run.log
  mkdir -p "$RAW/$b"
  say "run $run/$RUNS $c $b (load $(cut -d' ' -f1-3 /proc/loadavg))"
  if [ "$c" = M ]; then
    # shellcheck disable=SC2046
    OUT=$RAW/$b/mem-r$run ONLY= MEMORY=1 RUNS=1 BROKER_PID=$pid BENCH=$AMQP_BENCH \
      "$SCEN_SH" --port "$port" > "$log" 2>&1 || { failed=$((failed + 1)); say "$b memory check failed (see $log)"; }
    grep -E '^M ' "$log" | head -3 | sed 's/^/    /' >&2 || true
  else
    # shellcheck disable=SC2046
    OUT=$RAW/$b ONLY=$c RUNS=1 BROKER_PID=$pid BENCH=$AMQP_BENCH \
      "$SCEN_SH" --port "$port" $(quick_args "$c") > "$log" 2>&1 || { failed=$((failed + 1)); say "$b $c failed (see $log)"; }
    tail -1 "$RAW/$b/$c.jsonl" 2>/dev/null | $PY -c 'import json,sys
r=json.loads(sys.stdin.read() or "{}")
lat=r.get("latency_us") or {}
print("    %s consumed %.0f msg/s, broker cpu %.2f s, p99 %s us, %s" % (sys.argv[1], r.get("consume_rate",0), r.get("broker_cpu_s",-1), lat.get("p99","-"), r.get("status")))' "$b" >&2 || true
  fi
}

CASES=$SCENARIOS
[ "$MEMORY" = 1 ] && CASES="$CASES M"
failed=0
i=0
for run in $(seq 1 "$RUNS"); do
  for c in $CASES; do
    order=$BROKERS
    [ $(((run + i) % 2)) = 0 ] && order=$(echo "$BROKERS" | tr ' ' '\n' | tac | xargs)
    i=$((i + 1))
    for b in $order; do run_case "$b" "$c" "$run"; done
  done
done
echo "uptime at end: $(uptime)" >> "$OUT/meta.txt"

# --- summary -------------------------------------------------------------------
{
  echo "# AMQP benchmark $STAMP"
  echo
  sed 's/^/    /' "$OUT/meta.txt"
  echo
  echo "## warren vs RabbitMQ"
  echo
  $PY "$REPORT" "$RAW" --store "$WARREN_STORE"
  echo
  echo "## scenarios.sh (medians of its own, per broker)"
  for b in $BROKERS; do
    [ "$b" = warren ] && pid=$WARREN_PID || pid=$RABBITMQ_PID
    echo
    echo "$b:"
    echo
    # RUNS=0: no new run, only scenarios.sh's statistics over the raw files
    OUT=$RAW/$b RUNS=0 ONLY="$SCENARIOS" BROKER_PID=$pid BENCH=$AMQP_BENCH "$SCEN_SH" 2>/dev/null \
      | sed '/^$/d; s/^/    /' || true
  done
  [ $failed -gt 0 ] && { echo; echo "**$failed case(s) failed; see raw/*.log and raw/*/*.err**"; }
} > "$OUT/summary.md"
echo
cat "$OUT/summary.md"
echo
say "results in $OUT (summary.md; raw/ not committed)"
[ $failed = 0 ]
