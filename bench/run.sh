#!/bin/bash
# `make bench`: every benchmark under bench/ that exists, in turn.
# Each script documents its own environment (QUICK=1 for a smoke run).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
status=0
for b in rest amqp; do
  if [ -x "$HERE/$b.sh" ]; then
    echo "=== bench/$b.sh"
    "$HERE/$b.sh" || status=$?
  fi
done
exit $status
