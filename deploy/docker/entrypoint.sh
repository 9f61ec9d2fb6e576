#!/bin/sh
# The image's entrypoint: `wa-support ARGS`, after joining the Ray cluster when asked.
#
# With RAY_ADDRESS set (the head's host:port) and RAY_JOIN_CLUSTER=1 (the default), the
# container first joins that cluster as a Ray node, because a Ray driver (the gateway)
# must run on a node of its cluster. RAY_NODE_CPUS (default 0) is what it offers Ray.
# Without RAY_ADDRESS, `wa-support serve` starts a local Ray of its own.
# `exec` keeps wa-support as the process that gets SIGTERM, so `docker stop` drains it.
set -eu

if [ "${1:-}" = "ray" ]; then
  exec "$@"
fi

if [ -n "${RAY_ADDRESS:-}" ] && [ "${RAY_JOIN_CLUSTER:-1}" = "1" ]; then
  ray start --address="$RAY_ADDRESS" \
    --num-cpus="${RAY_NODE_CPUS:-0}" \
    --object-store-memory="$(( ${RAY_OBJECT_STORE_MB:-150} * 1024 * 1024 ))" \
    --disable-usage-stats
fi

exec wa-support "$@"
