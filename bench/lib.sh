# bench/lib.sh - shared by the bench/*.sh scripts (sourced, not run).
#
#   bench_begin NAME PREFIX   for the script NAME.sh: STAMP (UTC), OUT (unless
#                             set: bench/results/PREFIX$STAMP), RAW=$OUT/raw
#                             (made), TMP (a new /tmp/warren-NAME.XXXXXX); say()
#                             then prefixes its lines with "NAME.sh:"
#   free_port                 a loopback port nobody listens on
#   build_warrend             sets WARREND (unless set) and WARREN_REV: builds
#                             warrend in Release into build-bench/, or from $REV
#                             (git archive) into $TMP/build
#   start_warrend [ARGS...]   starts $WARREND on free loopback ports with a data
#                             dir in $TMP; sets WARREN_PID HTTP_PORT AMQP_PORT
#                             WARREN_URL; waits until GET /v2/ping answers 2xx
#   stop_warrend              SIGTERM, wait 10 s, then SIGKILL
#   warren_desc               one line: the binary / revision warren runs
#   build_amqp_bench          sets AMQP_BENCH: the shared amqp-bench, built if needed
#   start_rabbitmq            a private RabbitMQ node (bench/rabbitmq/setup.sh) in a
#                             new /tmp dir; sets RABBITMQ_RUN RABBITMQ_PORT RABBITMQ_PID
#                             RABBITMQ_VERSION; status 1 (RABBITMQ_RUN empty) if it
#                             did not start. Stop it with bench/rabbitmq/stop.sh "$RABBITMQ_RUN"
#   fetch_canned DIR          warren's own answers to the shared scripts' post and
#                             pop, byte for byte, into DIR/{post,pop}.{head,body}
#                             (needs WARREN_URL); for the servers that replay them
#   build_evhtp_canned        sets EVHTP_CANNED: bench/evhtp_canned.c built into
#                             $TMP, linked as warrend is (jemalloc when found)
#   need_tool CMD SET         installs the bench packages SET (rest, amqp) when
#                             CMD is missing; exits 1 if it is still missing
#   machine_lines             the date and machine lines a meta.txt starts with
#   add_rabbitmq              unless RABBITMQ=0: start_rabbitmq, add "rabbitmq" to
#                             BROKERS; exit 1 if BROKERS is then empty
#   bench_traps               on exit (and INT/TERM: status 130) stop warrend and the
#                             RabbitMQ node / Zaqar the script started (RABBITMQ_RUN,
#                             ZAQAR_RUN), remove TMP (KEEP=1 keeps it and RabbitMQ's dir)
#
# Needs REPO; call bench_begin before the rest.

PY=/usr/bin/python3   # Debian's python: sees python3-requests

bench_begin() {
  BENCH_NAME=$1
  STAMP=$(date -u +%Y%m%dT%H%M%SZ)
  OUT=${OUT:-$REPO/bench/results/$2$STAMP}
  RAW=$OUT/raw
  mkdir -p "$RAW"
  TMP=$(mktemp -d "/tmp/warren-$1.XXXXXX")
}

say() { echo "$BENCH_NAME.sh: $*" >&2; }

free_port() {
  $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

build_warrend() {
  WARREN_REV=""
  [ -n "${WARREND:-}" ] && return 0
  local src=$REPO bld=$REPO/build-bench
  if [ -n "${REV:-}" ]; then
    src=$TMP/src; bld=$TMP/build; mkdir -p "$src"
    git -C "$REPO" archive "$REV" | tar -x -C "$src"
    WARREN_REV=$(git -C "$REPO" rev-parse --short "$REV")
  fi
  say "building warrend (Release) from ${REV:-the work tree} in $bld"
  if ! { cmake -B "$bld" -S "$src" -DCMAKE_BUILD_TYPE=Release -DWR_TESTS=OFF \
         && cmake --build "$bld" -j2 --target warrend; } > "$TMP/build.log" 2>&1; then
    tail -30 "$TMP/build.log" >&2; say "build failed"; return 1
  fi
  WARREND=$bld/warrend
}

start_warrend() {
  HTTP_PORT=$(free_port); AMQP_PORT=$(free_port)
  while [ "$AMQP_PORT" = "$HTTP_PORT" ]; do AMQP_PORT=$(free_port); done
  mkdir -p "$TMP/warren-data"
  "$WARREND" --http "127.0.0.1:$HTTP_PORT" --amqp "127.0.0.1:$AMQP_PORT" --data "$TMP/warren-data" \
    "$@" > "$TMP/warrend.log" 2>&1 &
  WARREN_PID=$!
  WARREN_URL=http://127.0.0.1:$HTTP_PORT
  local code
  for _ in $(seq 100); do
    code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' -H 'X-Project-Id: bench-ping' \
           -H 'Client-ID: 5f3a0d4e-8c1b-4b7a-9f2e-3d6c1a0b9e77' "$WARREN_URL/v2/ping" 2>/dev/null || true)
    case $code in 2*) say "warren up at $WARREN_URL, AMQP 127.0.0.1:$AMQP_PORT (pid $WARREN_PID, $WARREND)"; return 0 ;; esac
    kill -0 "$WARREN_PID" 2>/dev/null || break
    sleep 0.1
  done
  tail -20 "$TMP/warrend.log" >&2; say "warrend did not answer $WARREN_URL/v2/ping"; return 1
}

stop_warrend() {
  [ -n "${WARREN_PID:-}" ] && kill -0 "$WARREN_PID" 2>/dev/null || return 0
  kill -TERM "$WARREN_PID"
  for _ in $(seq 100); do kill -0 "$WARREN_PID" 2>/dev/null || return 0; sleep 0.1; done
  say "warrend $WARREN_PID ignored SIGTERM; SIGKILL"; kill -KILL "$WARREN_PID"
}

warren_desc() {
  if [ -n "${WARREN_REV:-}" ]; then echo "$WARREN_REV (REV=$REV)"; return; fi
  local dirty=""
  [ -n "$(git -C "$REPO" status --porcelain -- core frontends backends zones CMakeLists.txt 2>/dev/null)" ] \
    && dirty=' + uncommitted changes'
  echo "$WARREND, work tree at $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)$dirty"
}

# build_amqp_bench: sets AMQP_BENCH (unless set) to the shared amqp-bench,
# built from $SHARED_DIR/amqp-bench/amqp-bench.c into build-bench/ when
# missing or older than the source. Needs SHARED_DIR.
build_amqp_bench() {
  local src=$SHARED_DIR/amqp-bench/amqp-bench.c
  [ -n "${AMQP_BENCH:-}" ] && return 0
  [ -f "$src" ] || { say "no $src (set SHARED_DIR)"; return 1; }
  AMQP_BENCH=$REPO/build-bench/amqp-bench
  mkdir -p "$REPO/build-bench"
  if [ ! -x "$AMQP_BENCH" ] || [ "$src" -nt "$AMQP_BENCH" ]; then
    say "building $AMQP_BENCH"
    gcc -O2 -Wall -Wextra -o "$AMQP_BENCH" "$src" -lrabbitmq -lpthread
  fi
}

start_rabbitmq() {
  RABBITMQ_PORT=""; RABBITMQ_PID=""; RABBITMQ_VERSION=""
  RABBITMQ_RUN=$(mktemp -d /tmp/rabbitmq-bench.XXXXXX)
  if "$REPO/bench/rabbitmq/setup.sh" "$RABBITMQ_RUN" > "$TMP/rabbitmq.env"; then
    # shellcheck disable=SC1091
    . "$TMP/rabbitmq.env"
    return 0
  fi
  RABBITMQ_RUN=""; say "RabbitMQ did not start: running warren alone"
  return 1
}

bench_cleanup() {
  set +e
  stop_warrend
  [ -n "${RABBITMQ_RUN:-}" ] && KEEP_RUN=${KEEP:-0} "$REPO/bench/rabbitmq/stop.sh" "$RABBITMQ_RUN"
  [ -n "${ZAQAR_RUN:-}" ] && "$REPO/bench/zaqar/stop.sh" "$ZAQAR_RUN"
  if [ "${KEEP:-0}" = 1 ]; then say "kept $TMP"; else rm -rf "$TMP"; fi
}

bench_traps() {
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}

need_tool() {
  command -v "$1" >/dev/null || "$REPO/deploy/install-deps.sh" --bench "$2"
  command -v "$1" >/dev/null || { say "no $1 (deploy/install-deps.sh --bench $2)"; exit 1; }
}

fetch_canned() {
  local dir=$1
  local h=(-H "Client-ID: 5f3a0d4e-8c1b-4b7a-9f2e-3d6c1a0b9e77" -H "X-Project-Id: bench-canned"
           -H "Content-Type: application/json")
  $PY - "$dir" <<'EOF'
import sys
body = '{"event":"bench","seq":12345,"payload":"' + 'x' * 58 + '"}'
doc = lambda n: '{"messages":[' + ','.join('{"ttl":3600,"body":%s}' % body for _ in range(n)) + ']}'
open(sys.argv[1] + '/post1.json', 'w').write(doc(1))
open(sys.argv[1] + '/post10.json', 'w').write(doc(10))
EOF
  curl -sf "${h[@]}" -X PUT "$WARREN_URL/v2/queues/canned" >/dev/null
  curl -sf "${h[@]}" -X POST --data-binary @"$dir/post10.json" "$WARREN_URL/v2/queues/canned/messages" >/dev/null
  curl -sf "${h[@]}" -X POST --data-binary @"$dir/post1.json" "$WARREN_URL/v2/queues/canned/messages" \
    -D "$dir/post.head" -o "$dir/post.body"
  curl -sf "${h[@]}" -X DELETE "$WARREN_URL/v2/queues/canned/messages?pop=10" \
    -D "$dir/pop.head" -o "$dir/pop.body"
  curl -sf "${h[@]}" -X DELETE "$WARREN_URL/v2/queues/canned" >/dev/null
}

build_evhtp_canned() {
  local jemalloc
  jemalloc=$(pkg-config --libs jemalloc 2>/dev/null || true)
  EVHTP_CANNED=$TMP/evhtp_canned
  # shellcheck disable=SC2046,SC2086
  if ! cc -std=gnu11 -O2 -Wall -Wextra -Werror -o "$EVHTP_CANNED" "$REPO/bench/evhtp_canned.c" \
       $(pkg-config --cflags evhtp 2>/dev/null || true) -levhtp -levent -ljansson -lpthread $jemalloc \
       > "$TMP/evhtp_canned.log" 2>&1; then
    cat "$TMP/evhtp_canned.log" >&2; say "evhtp_canned did not build"; return 1
  fi
}

machine_lines() {
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "machine: $(nproc) cores, $(uname -sr), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
}

add_rabbitmq() {
  if [ "${RABBITMQ:-1}" != 0 ] && start_rabbitmq; then BROKERS="$BROKERS rabbitmq"; fi
  BROKERS=$(echo "$BROKERS" | xargs)
  [ -n "$BROKERS" ] || { say "nothing to benchmark"; exit 1; }
}
