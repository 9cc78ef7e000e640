#!/bin/bash
# Stop the private RabbitMQ node that bench/rabbitmq/setup.sh started in
# RUN_DIR (rabbitmqctl stop, then its pids), stop its own epmd, wait until all
# of it is gone; then remove RUN_DIR (KEEP_RUN=1 keeps it).
#   bench/rabbitmq/stop.sh RUN_DIR
set -u
RUN=${1:?usage: stop.sh RUN_DIR}
[ -f "$RUN/rabbitmq.env" ] || exit 0
# shellcheck disable=SC1091
. "$RUN/rabbitmq.env"
SBIN=/usr/lib/rabbitmq/bin

gone() {  # pid: wait up to 10 s for it to exit; SIGKILL if it did not
  local pid=$1
  [ -n "$pid" ] || return 0
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null
  for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
}

beam=$(cat "$RUN/rabbitmq.pid" 2>/dev/null || true)
script=$(cat "$RUN/script.pid" 2>/dev/null || true)
if [ -n "$beam" ] && kill -0 "$beam" 2>/dev/null; then
  timeout 30 "$SBIN/rabbitmqctl" -n "$RABBITMQ_NODENAME" stop > "$RUN/stop.out" 2>&1 \
    || kill -TERM "$beam" 2>/dev/null
fi
gone "$beam"
[ -n "$script" ] && kill -TERM "$script" 2>/dev/null
gone "$script"
# our epmd (ERL_EPMD_PORT from rabbitmq.env), never the system's
if epmd -names >/dev/null 2>&1; then
  epmd -kill >/dev/null 2>&1
  for _ in $(seq 50); do epmd -names >/dev/null 2>&1 || break; sleep 0.1; done
fi
case "$RUN" in
  /tmp/rabbitmq-bench.*) [ "${KEEP_RUN:-0}" = 1 ] || rm -rf "$RUN" ;;
esac
exit 0
