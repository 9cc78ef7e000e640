#!/bin/bash
# Start a private RabbitMQ node (Debian's rabbitmq-server) on loopback, for
# side-by-side benchmarks. Never touches a system-wide rabbitmq service: its own
# node name, AMQP port, distribution port, epmd (on its own port), Erlang
# cookie (HOME), config, mnesia and log dirs, all under RUN_DIR; no plugins
# (so no management plugin).
#
#   bench/rabbitmq/setup.sh [RUN_DIR]      install if needed, start, print env lines
#   bench/rabbitmq/stop.sh RUN_DIR         stop what setup.sh started, wait until gone
#
# Env:
#   RABBITMQ_PORT   AMQP port (default: a free one); DIST_PORT, EPMD_PORT likewise
#   NO_INSTALL=1    never call apt-get
#
# On success prints shell assignments (also kept in RUN_DIR/env):
#   RABBITMQ_PORT= RABBITMQ_PID= (the beam.smp process) RABBITMQ_RUN= RABBITMQ_VERSION=
# Exit status 0 = the node booted and listens; 1 = failure (nothing left running).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
SBIN=/usr/lib/rabbitmq/bin

log() { echo "rabbitmq-setup: $*" >&2; }

"$REPO/deploy/install-deps.sh" --bench amqp >&2 || { log "rabbitmq-server is not installed"; exit 1; }
[ -x "$SBIN/rabbitmq-server" ] || { log "no $SBIN/rabbitmq-server"; exit 1; }

RUN=${1:-$(mktemp -d /tmp/rabbitmq-bench.XXXXXX)}
mkdir -p "$RUN/home" "$RUN/mnesia" "$RUN/log"
RUN=$(cd "$RUN" && pwd)

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
PORT=${RABBITMQ_PORT:-$(free_port)}
DIST=${DIST_PORT:-$(free_port)}
EPMD=${EPMD_PORT:-$(free_port)}
NODE=wrbench$$@localhost

echo '[].' > "$RUN/enabled_plugins"
: > "$RUN/rabbitmq-env.conf"   # instead of /etc/rabbitmq/rabbitmq-env.conf
cat > "$RUN/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$PORT
loopback_users.guest = true
EOF
# the distribution listener on loopback only (by default it binds every address)
echo '[{kernel, [{inet_dist_use_interface, {127,0,0,1}}]}].' > "$RUN/advanced.config"
cat > "$RUN/rabbitmq.env" <<EOF
export HOME=$RUN/home
export RABBITMQ_CONF_ENV_FILE=$RUN/rabbitmq-env.conf
export RABBITMQ_NODENAME=$NODE
export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
export RABBITMQ_NODE_PORT=$PORT
export RABBITMQ_DIST_PORT=$DIST
export ERL_EPMD_PORT=$EPMD
export ERL_EPMD_ADDRESS=127.0.0.1
export RABBITMQ_MNESIA_BASE=$RUN/mnesia
export RABBITMQ_LOG_BASE=$RUN/log
export RABBITMQ_PID_FILE=$RUN/rabbitmq.pid
export RABBITMQ_CONFIG_FILE=$RUN/rabbitmq.conf
export RABBITMQ_ADVANCED_CONFIG_FILE=$RUN/advanced.config
export RABBITMQ_ENABLED_PLUGINS_FILE=$RUN/enabled_plugins
EOF
# shellcheck disable=SC1091
. "$RUN/rabbitmq.env"

trap '"$HERE/stop.sh" "$RUN" >/dev/null 2>&1 || true' ERR
"$SBIN/rabbitmq-server" > "$RUN/server.out" 2>&1 &
echo $! > "$RUN/script.pid"
if ! timeout 90 "$SBIN/rabbitmqctl" -n "$NODE" wait --timeout 80 "$RUN/rabbitmq.pid" > "$RUN/wait.out" 2>&1; then
  log "node $NODE did not boot (see $RUN/server.out, $RUN/log)"; tail -20 "$RUN/server.out" >&2
  "$HERE/stop.sh" "$RUN" >/dev/null 2>&1 || true
  exit 1
fi
trap - ERR
PID=$(cat "$RUN/rabbitmq.pid")
VERSION=$(dpkg-query -W -f='${Version}' rabbitmq-server)
{
  echo "RABBITMQ_PORT=$PORT"
  echo "RABBITMQ_PID=$PID"
  echo "RABBITMQ_RUN=$RUN"
  echo "RABBITMQ_VERSION=$VERSION"
} | tee "$RUN/env"
log "RabbitMQ $VERSION up on 127.0.0.1:$PORT (node $NODE, beam pid $PID); stop: $HERE/stop.sh $RUN"
