#!/bin/bash
# REST (Zaqar v2) benchmark: warren vs OpenStack Zaqar, side by side, same run.
#
#   bench/rest.sh                 full run: 4 scenarios x {16,64} conns x 3 runs x 10 s
#   QUICK=1 bench/rest.sh         smoke test: 1 run x 3 s
#
# Builds warrend (Release, into build-bench/), starts it on free loopback ports
# with a temp data dir, starts Zaqar with bench/zaqar/setup.sh (if it can) and
# runs the shared wrk harness (SHARED_DIR/rest/bench.py) against both,
# alternating servers case by case so that machine-load drift hits both alike.
# Results: bench/results/<UTC stamp>/ (raw JSON, ignored by git) and its
# summary.md (summarize.py tables + the warren/Zaqar ratio table), printed too.
#
# Env:
#   SHARED_DIR   the shared bench folder (default: ../shared/bench from the repo root)
#   ZAQAR_SRC    git dir of openstack/zaqar, for the Redis Lua scripts Debian
#                lacks (see bench/zaqar/setup.sh); without it and without the
#                scripts installed, warren runs alone against reference numbers
#   ZAQAR=0      do not start Zaqar;  WARREN=0  do not run warren
#   WARREND      use this warrend binary instead of building one
#   REV          build warren from this git revision (e.g. HEAD) in a temp copy,
#                not from the work tree (which may hold others' unfinished files)
#   RUNS DURATION CONNS SCENARIOS THREADS   (3, 10, 16,64, post,post10,pop,claim, 2)
#   PRELOAD      first preload for pop/claim (60000; bench.py doubles it when a
#                run drains the queue); PRELOAD_WARREN / PRELOAD_ZAQAR per server
#   OUT          results folder (default bench/results/<stamp>, QUICK: .../quick-<stamp>)
#   KEEP=1       keep the temp dir (warren's data dir, logs)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED_DIR=${SHARED_DIR:-$REPO/../shared/bench}
[ -f "$SHARED_DIR/rest/bench.py" ] || { [ -f "$SHARED_DIR/bench/rest/bench.py" ] && SHARED_DIR=$SHARED_DIR/bench; }
BENCH_PY=$SHARED_DIR/rest/bench.py
SUMMARIZE=$SHARED_DIR/rest/summarize.py
REPORT=$REPO/bench/rest_report.py
[ -f "$BENCH_PY" ] || { echo "rest.sh: no $BENCH_PY (set SHARED_DIR)" >&2; exit 1; }

if [ "${QUICK:-0}" = 1 ]; then RUNS=${RUNS:-1}; DURATION=${DURATION:-3}; else RUNS=${RUNS:-3}; DURATION=${DURATION:-10}; fi
CONNS=${CONNS:-16,64}
SCENARIOS=${SCENARIOS:-post,post10,pop,claim}
THREADS=${THREADS:-2}
# (not $(... && echo quick-): a false test there fails the assignment under set -e)
PREFIX=""; [ "${QUICK:-0}" = 1 ] && PREFIX=quick-
# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"
bench_begin rest "$PREFIX"

WARREN_PID=""; ZAQAR_RUN=""
bench_traps

# --- warren ------------------------------------------------------------------
WARREN_URL=""
if [ "${WARREN:-1}" != 0 ]; then
  build_warrend
  # Like for like: the Zaqar it meets keeps messages in Redis without
  # persistence, so warren's REST queues are not durable here either
  # (override with WARREN_ARGS, e.g. WARREN_ARGS=--rest-durable=true).
  # shellcheck disable=SC2086
  start_warrend ${WARREN_ARGS:---rest-durable false}
fi

# --- Zaqar -------------------------------------------------------------------
ZAQAR_URL=""; ZAQAR_PIDS=""; REDIS_PID=""
if [ "${ZAQAR:-1}" != 0 ]; then
  ZAQAR_RUN=$(mktemp -d /tmp/zaqar-bench.XXXXXX)
  set +e
  "$REPO/bench/zaqar/setup.sh" "$ZAQAR_RUN" > "$TMP/zaqar.env"
  rc=$?
  set -e
  if [ $rc = 0 ]; then
    # shellcheck disable=SC1090
    . "$TMP/zaqar.env"
    say "Zaqar up at $ZAQAR_URL (pids $ZAQAR_PIDS, redis $REDIS_PID)"
  else
    "$REPO/bench/zaqar/stop.sh" "$ZAQAR_RUN"; ZAQAR_RUN=""
    if [ $rc = 3 ]; then
      say "Zaqar not available (Redis Lua scripts missing, ZAQAR_SRC unset): running warren alone;"
      say "Zaqar numbers below are the shared README's reference numbers, NOT the same run."
    else
      say "Zaqar failed to start (status $rc): running warren alone against reference numbers"
    fi
  fi
fi
[ -n "$WARREN_URL$ZAQAR_URL" ] || { say "nothing to benchmark"; exit 1; }

# --- the runs: alternate servers case by case -------------------------------
SERVERS=""
[ -n "$WARREN_URL" ] && SERVERS="warren"
[ -n "$ZAQAR_URL" ] && SERVERS="$SERVERS zaqar"
{
  machine_lines
  [ -n "$WARREN_URL" ] && echo "warren: $(warren_desc), args: ${WARREN_ARGS:---rest-durable false}"
  [ -n "$ZAQAR_URL" ] && echo "zaqar: python3-zaqar $(dpkg-query -W -f='${Version}' python3-zaqar), Redis store, uwsgi 2 processes"
  echo "runs: $RUNS x ${DURATION}s, wrk -t$THREADS, conns $CONNS, scenarios $SCENARIOS"
} > "$OUT/meta.txt"
cat "$OUT/meta.txt" >&2

failed=0
for run in $(seq 1 "$RUNS"); do
  for scen in ${SCENARIOS//,/ }; do
    for conns in ${CONNS//,/ }; do
      order=$SERVERS
      # alternate which server goes first
      [ $((run % 2)) = 0 ] && order=$(echo "$SERVERS" | tr ' ' '\n' | tac | xargs)
      for srv in $order; do
        if [ "$srv" = warren ]; then
          url=$WARREN_URL; pids=$WARREN_PID; extra=()
          if ! kill -0 "$WARREN_PID" 2>/dev/null; then say "warrend died (see log below)"; tail -20 "$TMP/warrend.log" >&2; exit 1; fi
        else
          url=$ZAQAR_URL; pids=$ZAQAR_PIDS; extra=(--redis-pid "$REDIS_PID")
        fi
        if [ "$srv" = warren ]; then pre0=${PRELOAD_WARREN:-${PRELOAD:-60000}}; else pre0=${PRELOAD_ZAQAR:-${PRELOAD:-60000}}; fi
        pre=$($PY "$REPORT" preload "$OUT/raw" "$srv" "$scen" "$conns" "$pre0")
        say "run $run/$RUNS $scen c=$conns $srv"
        raw=$OUT/raw/$srv-$scen-c$conns-r$run.json
        if ! $PY "$BENCH_PY" "$url" --label "$srv" --runs 1 --duration "$DURATION" \
             --threads "$THREADS" --conns "$conns" --scenarios "$scen" --preload "$pre" \
             --pids "$pids" "${extra[@]}" --out "$raw" > "$OUT/raw/$srv-$scen-c$conns-r$run.log" 2>&1; then
          failed=$((failed + 1))
          say "bench.py failed for $srv $scen c=$conns run $run:"; tail -5 "$OUT/raw/$srv-$scen-c$conns-r$run.log" >&2
        else
          grep -E '^ +'"$scen"' ' "$OUT/raw/$srv-$scen-c$conns-r$run.log" | sed 's/^ */    /' | cut -c1-220 >&2 || true
        fi
      done
    done
  done
done

# --- merge, summarize, ratios ------------------------------------------------
merged=()
for srv in $SERVERS; do
  ls "$OUT/raw/$srv-"*.json >/dev/null 2>&1 || continue
  $PY "$REPORT" merge "$OUT/$srv.json" "$srv" "$OUT/raw/$srv-"*.json
  merged+=("$OUT/$srv.json")
done
{
  echo "# REST benchmark $STAMP"
  echo
  sed 's/^/    /' "$OUT/meta.txt"
  echo
  if [ -f "$OUT/warren.json" ]; then
    echo "## warren vs Zaqar (messages/s, medians of $RUNS)"
    echo
    if [ -f "$OUT/zaqar.json" ]; then
      $PY "$REPORT" table "$OUT/warren.json" "$OUT/zaqar.json"
    else
      echo "Zaqar did not run: its numbers are the shared README's reference numbers (reference, not same run)."
      echo
      $PY "$REPORT" table "$OUT/warren.json"
    fi
    echo
  fi
  echo "## summarize.py"
  echo
  [ ${#merged[@]} -gt 0 ] && $PY "$SUMMARIZE" "${merged[@]}"
  [ $failed -gt 0 ] && { echo; echo "**$failed bench.py invocation(s) failed; see raw/*.log**"; }
} > "$OUT/summary.md"
echo
cat "$OUT/summary.md"
echo
say "results in $OUT (summary.md; raw JSON not committed)"
[ $failed = 0 ]
