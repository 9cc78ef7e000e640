#!/bin/bash
# Start an OpenStack Zaqar v2 server (Debian's zaqar-server, Redis store, uwsgi
# with 2 worker processes, no auth) on loopback, for side-by-side benchmarks.
#
#   bench/zaqar/setup.sh [RUN_DIR]      install if needed, start, print env lines
#   bench/zaqar/stop.sh RUN_DIR         stop what setup.sh started (by pid)
#
# Env:
#   ZAQAR_SRC    a git dir (bare, or a checkout) of openstack/zaqar. Debian's
#                python3-zaqar (15.0.0-1+deb12u1) ships without the Redis
#                driver's Lua scripts, so every post/claim answers 503; when
#                they are missing they are taken from $ZAQAR_TAG of that repo
#                and written into the installed package (never into this repo).
#   ZAQAR_TAG    default 15.0.0 (the version Debian 12 ships)
#   ZAQAR_PORT   REST port (default: a free one); REDIS_PORT likewise
#   ZAQAR_PROCS  uwsgi worker processes (default 2)
#   NO_INSTALL=1 never call apt-get
#
# On success prints shell assignments (also kept in RUN_DIR/env):
#   ZAQAR_URL= ZAQAR_RUN= ZAQAR_PIDS= (uwsgi master + workers) REDIS_PID=
# Exit status 0 = Zaqar answers and accepts a message post; 3 = the Redis
# scripts are missing and ZAQAR_SRC is not set (nothing left running);
# 1 = any other failure (nothing left running).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SCRIPTS_DIR=/usr/lib/python3/dist-packages/zaqar/storage/redis/scripts
ZAQAR_TAG=${ZAQAR_TAG:-15.0.0}
PROCS=${ZAQAR_PROCS:-2}

log() { echo "zaqar-setup: $*" >&2; }

# --- packages (quiet when present): deploy/install-deps.sh --bench rest ------
"$HERE/../../deploy/install-deps.sh" --bench rest >&2 || { log "missing packages"; exit 1; }

# --- the Redis driver's Lua scripts ------------------------------------------
need_scripts=""
for s in index_messages claim_messages; do
  [ -s "$SCRIPTS_DIR/$s.lua" ] || need_scripts="$need_scripts $s"
done
if [ -n "$need_scripts" ]; then
  if [ -z "${ZAQAR_SRC:-}" ]; then
    log "Debian's python3-zaqar lacks the Redis driver's Lua scripts (in $SCRIPTS_DIR:$need_scripts);"
    log "without them every message post answers 503. Set ZAQAR_SRC to a git dir of openstack/zaqar"
    log "(e.g. a bare clone) and they are taken from tag $ZAQAR_TAG. Zaqar NOT started."
    exit 3
  fi
  gitdir=$ZAQAR_SRC
  [ -d "$ZAQAR_SRC/.git" ] && gitdir=$ZAQAR_SRC/.git
  mkdir -p "$SCRIPTS_DIR"
  for s in $need_scripts; do
    if ! git --git-dir "$gitdir" show "$ZAQAR_TAG:zaqar/storage/redis/scripts/$s.lua" > "$SCRIPTS_DIR/$s.lua.tmp"; then
      rm -f "$SCRIPTS_DIR/$s.lua.tmp"
      log "cannot read $ZAQAR_TAG:zaqar/storage/redis/scripts/$s.lua from $gitdir"; exit 1
    fi
    mv "$SCRIPTS_DIR/$s.lua.tmp" "$SCRIPTS_DIR/$s.lua"
    log "installed $SCRIPTS_DIR/$s.lua from $ZAQAR_TAG"
  done
fi

# --- run dir, ports, config --------------------------------------------------
RUN=${1:-$(mktemp -d /tmp/zaqar-bench.XXXXXX)}
mkdir -p "$RUN/.zaqar" "$RUN/redis"
RUN=$(cd "$RUN" && pwd)

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
REDIS_PORT=${REDIS_PORT:-$(free_port)}
ZAQAR_PORT=${ZAQAR_PORT:-$(free_port)}
while [ "$ZAQAR_PORT" = "$REDIS_PORT" ]; do ZAQAR_PORT=$(free_port); done

# zaqar.transport.wsgi.app parses no command line (args=[]): it reads the
# standard config paths, the first being ~/.zaqar/zaqar.conf, so the workers
# run with HOME=$RUN.
cat > "$RUN/.zaqar/zaqar.conf" <<EOF
[DEFAULT]
auth_strategy =
unreliable = true
debug = false

[drivers]
transport = wsgi
message_store = redis
management_store = redis

[drivers:message_store:redis]
uri = redis://127.0.0.1:$REDIS_PORT

[drivers:management_store:redis]
uri = redis://127.0.0.1:$REDIS_PORT

[drivers:transport:wsgi]
bind = 127.0.0.1
port = $ZAQAR_PORT
EOF

# --- start -------------------------------------------------------------------
REDIS_PID=""; UWSGI_PID=""
cleanup_fail() {
  "$HERE/stop.sh" "$RUN" >/dev/null 2>&1 || true
}
trap 'cleanup_fail' ERR

redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
  --dir "$RUN/redis" --daemonize no --logfile "$RUN/redis.log" >/dev/null 2>&1 &
REDIS_PID=$!
echo "$REDIS_PID" > "$RUN/redis.pid"
for _ in $(seq 50); do
  redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && break
  sleep 0.1
done
redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG || { log "redis did not start (see $RUN/redis.log)"; cleanup_fail; exit 1; }

# --die-on-term: SIGTERM stops uwsgi (without it SIGTERM means "reload").
# --http-socket closes each connection after its response: wrk counts one
# read error per request for Zaqar, that is not a failure.
HOME=$RUN uwsgi_python3 --master --lazy-apps --processes "$PROCS" --die-on-term \
  --http-socket "127.0.0.1:$ZAQAR_PORT" --listen 1024 \
  --module zaqar.transport.wsgi.app:application --disable-logging \
  --pidfile "$RUN/uwsgi.pid" --logto "$RUN/uwsgi.log" >/dev/null 2>&1 &
UWSGI_PID=$!
echo "$UWSGI_PID" > "$RUN/uwsgi.master.pid"

URL=http://127.0.0.1:$ZAQAR_PORT
H=(-H 'Client-ID: 5f3a0d4e-8c1b-4b7a-9f2e-3d6c1a0b9e77' -H 'X-Project-Id: setup-check' -H 'Content-Type: application/json')
ok=0
for _ in $(seq 120); do
  if curl -sf -o /dev/null "$URL/v2/ping" "${H[@]}" 2>/dev/null \
     || [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/v2/ping" "${H[@]}" 2>/dev/null)" = 204 ]; then
    ok=1; break
  fi
  kill -0 "$UWSGI_PID" 2>/dev/null || break
  sleep 0.5
done
if [ $ok != 1 ]; then log "zaqar did not answer $URL/v2/ping (see $RUN/uwsgi.log)"; cleanup_fail; exit 1; fi

code=$(curl -s -o "$RUN/check.out" -w '%{http_code}' -X POST "${H[@]}" \
  -d '{"messages":[{"ttl":300,"body":{"check":1}}]}' "$URL/v2/queues/setup-check/messages")
if [ "$code" != 201 ]; then
  log "POST of a message answered $code, not 201: $(head -c 300 "$RUN/check.out") (see $RUN/uwsgi.log)"
  cleanup_fail; exit 1
fi
curl -s -o /dev/null -X DELETE "${H[@]}" "$URL/v2/queues/setup-check" || true
trap - ERR

# uwsgi master + its workers (for RSS)
sleep 0.5
PIDS="$UWSGI_PID $(pgrep -P "$UWSGI_PID" | tr '\n' ' ')"
PIDS=$(echo "$PIDS" | xargs)
{
  echo "ZAQAR_URL=$URL"
  echo "ZAQAR_RUN=$RUN"
  echo "ZAQAR_PIDS=\"$PIDS\""
  echo "ZAQAR_MASTER_PID=$UWSGI_PID"
  echo "REDIS_PID=$REDIS_PID"
} | tee "$RUN/env"
log "Zaqar up at $URL (uwsgi pids $PIDS, redis pid $REDIS_PID on port $REDIS_PORT); stop: $HERE/stop.sh $RUN"
