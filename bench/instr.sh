#!/bin/bash
# User-space instructions per REST request, counted by valgrind's callgrind.
#
#   bench/instr.sh                  warren (work tree) beside evhtp_canned
#   BASE=<rev> bench/instr.sh       and warren at <rev>: an A/B of a change
#
# A count the shared machine cannot move: wrk's msgs/s and p99 drift 20-30%
# within an hour here, which hides any change worth less than that. What it
# leaves out is the kernel's share (system calls, loopback TCP, wakeups), half
# of a request's CPU: read it beside rest.sh and ceiling.sh, not instead.
#
# Each server runs alone under callgrind. After a warm-up (and, for pop, a
# preload of 10 messages per pop to come) the counters are zeroed,
# bench/requests_n.py sends N requests over CONNS connections, each waiting
# for its answer, and the counters are dumped: instructions / N. The same
# requests as the shared wrk scripts (post: 1 message of 100 bytes, pop: 10).
# bench/evhtp_canned.c, replaying warren's own answers, gives what libevhtp
# and libevent cost per request by themselves: warren's own work is the rest.
#
# Env: N (5000) CONNS (16) SCENARIOS (post,pop) SHARDS (2) TOP (0: with n,
# each warren's n costliest functions, inclusive, go to the summary too);
# REV / WARREND as in rest.sh; OUT (bench/results/instr-<stamp>); KEEP=1.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=${N:-5000}; CONNS=${CONNS:-16}; SCENARIOS=${SCENARIOS:-post,pop}; SHARDS=${SHARDS:-2}; TOP=${TOP:-0}
# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"
bench_begin instr instr-

need_tool valgrind rest

WARREN_PID=""; ZAQAR_RUN=""; CG_PID=""
bench_traps
instr_cleanup() {
  if [ -n "$CG_PID" ]; then kill "$CG_PID" 2>/dev/null || true; wait "$CG_PID" 2>/dev/null || true; fi
  bench_cleanup
}
trap instr_cleanup EXIT

# --- the binaries -------------------------------------------------------------
build_warrend
A_BIN=$WARREND; A_DESC=$(warren_desc)
B_BIN=""; B_DESC=""
if [ -n "${BASE:-}" ]; then
  a_tmp=$TMP; a_rev=${REV:-}
  TMP=$TMP/base; mkdir -p "$TMP"; REV=$BASE; unset WARREND
  build_warrend
  B_BIN=$WARREND; B_DESC=$(warren_desc)
  TMP=$a_tmp; REV=$a_rev
fi

# evhtp_canned replays warren's own answers
WARREND=$A_BIN
start_warrend --rest-durable false
fetch_canned "$TMP"
stop_warrend; WARREN_PID=""
build_evhtp_canned

# count LABEL SCENARIO PORT CMD...: instructions per request of CMD (a server
# on PORT, started under callgrind), appended to $OUT/raw/all.txt
count() {
  local label=$1 scen=$2 port=$3 cg code warm
  shift 3
  cg=$TMP/cg-$label-$scen
  valgrind --tool=callgrind --callgrind-out-file="$cg" "$@" > "$TMP/$label-$scen.log" 2>&1 &
  CG_PID=$!
  for _ in $(seq 600); do
    code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' -H 'X-Project-Id: bench' \
           -H 'Client-ID: 5f3a0d4e-8c1b-4b7a-9f2e-3d6c1a0b9e77' "http://127.0.0.1:$port/v2/ping" || true)
    case $code in 2*) break ;; esac
    kill -0 "$CG_PID" 2>/dev/null || { tail -20 "$TMP/$label-$scen.log" >&2; return 1; }
    sleep 0.2
  done
  curl -sf -X PUT -H 'X-Project-Id: bench' -H 'Client-ID: 5f3a0d4e-8c1b-4b7a-9f2e-3d6c1a0b9e77' \
    "http://127.0.0.1:$port/v2/queues/bench" > /dev/null || true # evhtp_canned says 200 too
  if [ "$scen" = pop ]; then warm="$((N + 100)) post10"; else warm="300 $scen"; fi
  # shellcheck disable=SC2086
  $PY "$REPO/bench/requests_n.py" "$port" ${warm% *} "$CONNS" ${warm#* } > /dev/null
  callgrind_control -z "$CG_PID" > /dev/null
  $PY "$REPO/bench/requests_n.py" "$port" "$N" "$CONNS" "$scen" > /dev/null
  callgrind_control -d "$CG_PID" > /dev/null
  kill -TERM "$CG_PID"; wait "$CG_PID" 2>/dev/null || true; CG_PID=""
  local total
  total=$(callgrind_annotate "$cg.1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  echo "$label $scen $((total / N))" | tee -a "$OUT/raw/all.txt" >&2
  if [ "$TOP" -gt 0 ] && [ "${label#warren}" != "$label" ]; then
    { echo; echo "$label, $scen: the $TOP costliest functions, inclusive, instructions per request"; echo
      callgrind_annotate --inclusive=yes "$cg.1" 2>/dev/null \
        | awk -v n="$N" '/^ *[0-9,]+ \(/ && !/start_thread|clone|event_base_loop|loop_main|0x0000/ {
              c = $1; gsub(",", "", c); $1 = ""; $2 = ""; sub(/^ +/, ""); sub(/ \[.*/, "");
              printf "    %8d  %s\n", c / n, $0 }' | head -n "$TOP"; } >> "$TMP/top.txt"
  fi
}

for scen in ${SCENARIOS//,/ }; do
  port=$(free_port)
  count evhtp "$scen" "$port" "$EVHTP_CANNED" "$port" "$SHARDS" "$TMP/post.head" "$TMP/post.body" \
    "$TMP/pop.head" "$TMP/pop.body"
  if [ "$scen" = post ]; then # and with jansson's share of a post
    port=$(free_port)
    count evjson "$scen" "$port" "$EVHTP_CANNED" "$port" "$SHARDS" "$TMP/post.head" "$TMP/post.body" \
      "$TMP/pop.head" "$TMP/pop.body" json
  fi
  for who in A B; do
    bin=${who}_BIN; [ -n "${!bin}" ] || continue
    port=$(free_port); amqp=$(free_port)
    rm -rf "$TMP/data"; mkdir -p "$TMP/data"
    count "warren-$who" "$scen" "$port" "${!bin}" --http "127.0.0.1:$port" --amqp "127.0.0.1:$amqp" \
      --data "$TMP/data" --rest-durable false --log-level warn --shards "$SHARDS"
  done
done

{
  machine_lines
  echo "- warren A: $A_DESC"
  [ -z "$B_BIN" ] || echo "- warren B (BASE=$BASE): $B_DESC"
  echo "- evhtp: bench/evhtp_canned.c with $SHARDS threads, replaying warren's answers; warren with --shards $SHARDS --rest-durable false"
  echo "- valgrind $(valgrind --version | sed 's/valgrind-//'), callgrind; $N requests over $CONNS connections after a warm-up"
  echo
  if [ -n "$B_BIN" ]; then
    echo "| case | evhtp (canned) | warren B | warren A | A - B | A - evhtp |"
    echo "|---|---:|---:|---:|---:|---:|"
  else
    echo "| case | evhtp (canned) | warren | warren - evhtp |"
    echo "|---|---:|---:|---:|"
  fi
  for scen in ${SCENARIOS//,/ }; do
    $PY - "$OUT/raw/all.txt" "$scen" "${B_BIN:+B}" <<'EOF'
import sys
v = {l.split()[0]: int(l.split()[2]) for l in open(sys.argv[1]) if l.split()[1] == sys.argv[2]}
e, a = v['evhtp'], v['warren-A']
if sys.argv[3]:
    b = v['warren-B']
    print('| %s | %s | %s | %s | %+d (%+.1f%%) | %s |' % (sys.argv[2], format(e, ','), format(b, ','),
          format(a, ','), a - b, 100.0 * (a - b) / b, format(a - e, ',')))
else:
    print('| %s | %s | %s | %s |' % (sys.argv[2], format(e, ','), format(a, ','), format(a - e, ',')))
EOF
  done
  $PY - "$OUT/raw/all.txt" <<'EOF'
import sys
v = {l.split()[0]: int(l.split()[2]) for l in open(sys.argv[1]) if l.split()[1] == 'post'}
if 'evjson' in v:
    print('\npost, libevhtp canned plus jansson\'s share (evhtp_canned json): %s; warren A beyond both '
          'libraries: %s' % (format(v['evjson'], ','), format(v['warren-A'] - v['evjson'], ',')))
EOF
  echo
  echo "User-space instructions per request (callgrind's Ir), all threads of the server."
  [ ! -f "$TMP/top.txt" ] || cat "$TMP/top.txt"
} > "$OUT/summary.md"
cat "$OUT/summary.md"
