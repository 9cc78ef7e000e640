#!/bin/bash
# Stop the Zaqar (uwsgi) and redis-server that bench/zaqar/setup.sh started,
# by the pids it recorded in RUN_DIR; then remove RUN_DIR (KEEP_RUN=1 keeps it).
#   bench/zaqar/stop.sh RUN_DIR
set -u
RUN=${1:?usage: stop.sh RUN_DIR}
[ -d "$RUN" ] || exit 0

stop_pid() {  # pid signal
  local pid=$1 sig=$2
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -"$sig" "$pid" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null
}

if [ -f "$RUN/uwsgi.master.pid" ]; then
  master=$(cat "$RUN/uwsgi.master.pid")
  workers=$(pgrep -P "$master" 2>/dev/null | xargs)
  stop_pid "$master" TERM   # --die-on-term: master stops its workers
  for w in $workers; do stop_pid "$w" KILL; done
fi
[ -f "$RUN/redis.pid" ] && stop_pid "$(cat "$RUN/redis.pid")" TERM
case "$RUN" in
  /tmp/zaqar-bench.*) [ "${KEEP_RUN:-0}" = 1 ] || rm -rf "$RUN" ;;
esac
exit 0
