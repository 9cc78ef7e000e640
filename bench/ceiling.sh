#!/bin/bash
# REST ceiling: what the wrk harness itself allows on this machine, beside
# warren, in one run.
#
#   bench/ceiling.sh              3 runs x 10 s of post and pop at 64 conns
#
# nginx answers the bench's requests with canned bytes (warren's own answers
# to the same requests, fetched at the start) and does no other work: its
# msgs/s is the most, and its p99 the least, that a server can show through
# the shared wrk scripts on these cores, which wrk shares. bench/evhtp_canned.c
# does the same on warren's own HTTP stack (libevhtp on libevent, set up as
# warrend sets it up): the floor of any server built on that library. A
# second evhtp_canned also does jansson's share of each post (it parses the
# document and writes the body back out, as warren does, then answers canned
# bytes): the floor of the two libraries the project must use. warren runs
# the same cases, alternating with them run by run; the table gives warren's
# share of each. Read it beside bench/rest.sh's ratios to Zaqar.
#
# With Zaqar available (bench/zaqar/setup.sh: ZAQAR_SRC, as for rest.sh) its
# post runs in the same rounds, and every server's post rate is also given in
# Zaqar multiples: the issue's target is 50x. ZAQAR=0 leaves it out.
#
# Env: RUNS DURATION CONNS THREADS (3, 10, 64, 2); NGINX_WORKERS and
# EVHTP_THREADS (default: the number of cores, as warren's --shards); WARREND / REV as in rest.sh;
# OUT (default bench/results/ceiling-<stamp>); KEEP=1 keeps the temp dir.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED_DIR=${SHARED_DIR:-$REPO/../shared/bench}
[ -f "$SHARED_DIR/rest/post.lua" ] || { echo "ceiling.sh: no $SHARED_DIR/rest (set SHARED_DIR)" >&2; exit 1; }
RUNS=${RUNS:-3}; DURATION=${DURATION:-10}; CONNS=${CONNS:-64}; THREADS=${THREADS:-2}
NGINX_WORKERS=${NGINX_WORKERS:-$(nproc)}
EVHTP_THREADS=${EVHTP_THREADS:-$(nproc)}
# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"
bench_begin ceiling ceiling-

need_tool nginx rest

WARREN_PID=""; ZAQAR_RUN=""; NGINX_PID=""; EVHTP_PID=""; EVJSON_PID=""
bench_traps
ceiling_cleanup() {
  local p
  for p in "$NGINX_PID" "$EVHTP_PID" "$EVJSON_PID"; do
    if [ -n "$p" ]; then kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; fi
  done
  bench_cleanup
}
trap ceiling_cleanup EXIT

build_warrend
start_warrend --rest-durable false
say "warren up at $WARREN_URL"

CLIENT=5f3a0d4e-8c1b-4b7a-9f2e-3d6c1a0b9e77
H=(-H "Client-ID: $CLIENT" -H "X-Project-Id: bench-ceiling" -H "Content-Type: application/json")
fetch_canned "$TMP"
grep -q "'" "$TMP/post.body" "$TMP/pop.body" && { say "a quote in a canned answer"; exit 1; }
LOCATION=$(awk 'tolower($1) == "location:" {print $2}' "$TMP/post.head" | tr -d '\r')

NGINX_PORT=$(free_port)
mkdir -p "$TMP/nginx"
cat > "$TMP/nginx/nginx.conf" <<EOF
worker_processes $NGINX_WORKERS;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    default_type application/json;
    keepalive_requests 100000000;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            if (\$request_method = POST) {
                add_header Location $LOCATION;
                return 201 '$(cat "$TMP/post.body")';
            }
            return 200 '$(cat "$TMP/pop.body")';
        }
    }
}
EOF
nginx -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx" > "$TMP/nginx/out.log" 2>&1 &
NGINX_PID=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$NGINX_PORT/" && break; sleep 0.1; done
say "nginx up on $NGINX_PORT ($NGINX_WORKERS workers)"

# start_canned PORT [json]: evhtp_canned on PORT, checked; its pid in CANNED_PID
start_canned() {
  "$EVHTP_CANNED" "$1" "$EVHTP_THREADS" "$TMP/post.head" "$TMP/post.body" \
    "$TMP/pop.head" "$TMP/pop.body" ${2:+"$2"} > "$TMP/evhtp_canned-$1.out" 2>&1 &
  CANNED_PID=$!
  for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$1/" && break; sleep 0.1; done
  cmp -s "$TMP/post.body" <(curl -s -X POST --data-binary @"$TMP/post1.json" "http://127.0.0.1:$1/") \
    || { say "evhtp_canned ${2:-} does not answer"; exit 1; }
  say "evhtp_canned ${2:-} up on $1 ($EVHTP_THREADS threads)"
}
build_evhtp_canned
EVHTP_PORT=$(free_port); start_canned "$EVHTP_PORT"; EVHTP_PID=$CANNED_PID
# the same with jansson's share of a post (evhtp_canned.c: "json"), post only
EVJSON_PORT=$(free_port); start_canned "$EVJSON_PORT" json; EVJSON_PID=$CANNED_PID

ZAQAR_URL=""
if [ "${ZAQAR:-1}" != 0 ]; then
  ZAQAR_RUN=$(mktemp -d /tmp/zaqar-bench.XXXXXX)
  if "$REPO/bench/zaqar/setup.sh" "$ZAQAR_RUN" > "$TMP/zaqar.env"; then
    # shellcheck disable=SC1091
    . "$TMP/zaqar.env"
    say "Zaqar up at $ZAQAR_URL"
  else
    "$REPO/bench/zaqar/stop.sh" "$ZAQAR_RUN"; ZAQAR_RUN=""
    say "no Zaqar (see bench/zaqar/setup.sh; ZAQAR_SRC): no Zaqar multiples"
  fi
fi

# run_wrk SERVER URL SCENARIO QUEUE RUN: one wrk run, its output in raw/
run_wrk() {
  local f=$OUT/raw/$1-$3-r$5.txt
  ZQ_QUEUE=$4 ZQ_PROJECT=bench-ceiling ZQ_CLIENT=$CLIENT \
    wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -s "$SHARED_DIR/rest/$3.lua" "$2" > "$f" 2>&1
  echo "$1 $3 $5 $(sed -n 's/.*per_sec=\([0-9.]*\).*/\1/p' "$f") $(awk '$1 == "99%" {print $2}' "$f")" \
    | tee -a "$OUT/raw/all.txt" >&2
}

for r in $(seq "$RUNS"); do
  run_wrk nginx "http://127.0.0.1:$NGINX_PORT" post canned "$r"
  run_wrk evhtp "http://127.0.0.1:$EVHTP_PORT" post canned "$r"
  run_wrk evjson "http://127.0.0.1:$EVJSON_PORT" post canned "$r"
  run_wrk warren "$WARREN_URL" post "post-r$r" "$r"
  [ -z "$ZAQAR_URL" ] || run_wrk zaqar "$ZAQAR_URL" post "post-r$r" "$r"
  run_wrk nginx "http://127.0.0.1:$NGINX_PORT" pop canned "$r"
  run_wrk evhtp "http://127.0.0.1:$EVHTP_PORT" pop canned "$r"
  # a fresh queue, filled well past what a run pops
  ZQ_QUEUE=pop-r$r ZQ_PROJECT=bench-ceiling ZQ_CLIENT=$CLIENT \
    wrk -t"$THREADS" -c"$CONNS" -d"$((DURATION * 2))s" -s "$SHARED_DIR/rest/post10.lua" "$WARREN_URL" > /dev/null 2>&1
  run_wrk warren "$WARREN_URL" pop "pop-r$r" "$r"
  curl -s "${H[@]}" -X DELETE "$WARREN_URL/v2/queues/pop-r$r" >/dev/null || true
  curl -s "${H[@]}" -X DELETE "$WARREN_URL/v2/queues/post-r$r" >/dev/null || true
done

{
  machine_lines
  echo "- $(warren_desc); nginx $(nginx -v 2>&1 | sed 's/.*\///') with $NGINX_WORKERS workers and bench/evhtp_canned.c with $EVHTP_THREADS threads answering canned bytes"
  echo "- wrk -t$THREADS -c$CONNS, $RUNS runs x ${DURATION} s, medians; the shared post.lua / pop.lua"
  echo
  echo "| case | nginx (canned) msgs/s | p99 | evhtp (canned) msgs/s | p99 | warren msgs/s | p99 | warren / nginx | warren / evhtp |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  for s in post pop; do
    $PY - "$OUT/raw/all.txt" "$s" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.split()[1:2] == [sys.argv[2]]]
def med(who, i, f=float):
    v = [f(r[i]) for r in rows if r[0] == who and len(r) > i]
    return statistics.median(v) if v else float('nan')
def ms(x):  # wrk prints 4.99ms / 850.00us / 1.02s
    return float(x[:-2]) if x.endswith('ms') else float(x[:-2]) / 1000 if x.endswith('us') else float(x[:-1]) * 1000
cells = []
for who in ('nginx', 'evhtp', 'warren'):
    cells += [format(round(med(who, 3)), ','), '%.2f ms' % med(who, 4, ms)]
w = med('warren', 3)
print('| %s | %s | %.0f%% | %.0f%% |' % (sys.argv[2], ' | '.join(cells), 100 * w / med('nginx', 3), 100 * w / med('evhtp', 3)))
EOF
  done
  $PY - "$OUT/raw/all.txt" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.split()[1:2] == ['post'] and len(l.split()) > 3]
med = lambda who: statistics.median([float(r[3]) for r in rows if r[0] == who])
j, w = med('evjson'), med('warren')
print('\nlibevhtp canned plus jansson\'s share of a post (parse the document, dump the body): '
      '%s msgs/s; warren at %.0f%% of it.' % (format(round(j), ','), 100 * w / j))
if any(r[0] == 'zaqar' for r in rows):
    z = med('zaqar')
    print('\nZaqar (same rounds, uwsgi 2 processes, Redis) post: %s msgs/s; 50x is %s. In Zaqar multiples: %s.'
          % (format(round(z), ','), format(round(50 * z), ','),
             ', '.join('%s %.1fx' % (n, med(n) / z) for n in ('nginx', 'evhtp', 'evjson', 'warren'))))
EOF
} > "$OUT/summary.md"
cat "$OUT/summary.md"
