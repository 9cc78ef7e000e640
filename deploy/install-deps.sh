#!/usr/bin/env bash
# install-deps.sh - installs the Debian packages warren builds, tests and
# benchmarks with. Idempotent and quiet: when every package is already
# installed it prints nothing and touches nothing (no apt-get update).
#
#   deploy/install-deps.sh                 as root, or through sudo otherwise
#   deploy/install-deps.sh --bench amqp    also what a benchmark needs (amqp,
#                                          rest; repeatable): the servers warren
#                                          is compared with, and perf
#   NO_INSTALL=1                           only check: list what is missing, exit 1
#
# Debian 12 (bookworm) package names. Only apt packages: nothing is fetched
# from anywhere else.
set -euo pipefail

packages=(
  # build
  build-essential cmake pkg-config clang libclang-rt-14-dev
  # libraries (DESIGN.md "Dependencies")
  libevent-dev libevhtp-dev libjansson-dev libinih-dev libmsgpack-dev
  librocksdb-dev librabbitmq-dev libjemalloc-dev libsodium-dev libssl-dev
  # TLS tests: certificates made with the openssl command
  openssl
  # unit tests
  libcriterion-dev
  # integration tests and benchmarks: real clients, no mocks
  python3 python3-pytest python3-requests python3-zaqarclient wrk curl procps
  python3-pika python3-amqp python3-kombu python3-aio-pika amqp-tools python3-oslo.messaging python3-celery
)

# Benchmark-only packages (bench/*.sh), never needed to build or test.
while [ $# -gt 0 ]; do
  case "$1 ${2:-}" in
    "--bench amqp") packages+=(rabbitmq-server linux-perf) ;;   # bench/amqp.sh: RabbitMQ 3.10, profiles
    "--bench rest") packages+=(zaqar-server python3-redis redis-server uwsgi-core uwsgi-plugin-python3 wrk nginx-light valgrind) ;;   # bench/zaqar, bench/ceiling.sh, bench/instr.sh
    *) echo "usage: install-deps.sh [--bench amqp|rest]..." >&2; exit 64 ;;
  esac
  shift 2
done

# One dpkg-query for all; a package dpkg has never heard of is simply absent
# from its output (and counts as missing).
installed=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${packages[@]}" 2>/dev/null || true)
missing=()
for p in "${packages[@]}"; do
  grep -qx "$p installed" <<<"$installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "${NO_INSTALL:-0}" = 1 ]; then
  echo "install-deps: missing ${missing[*]} (NO_INSTALL=1)" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "install-deps: missing packages (${missing[*]}) and not root, no sudo" >&2
  exit 1
fi
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
