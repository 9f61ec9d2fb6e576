#!/usr/bin/env bash
# Start (or restart) `wa-support serve` on a Ray node that takes webhooks.
#
# Run by ray_cluster.yaml's start commands after `ray start` on every node. A node takes
# webhooks when the marker file ~/.wa-support-gateway exists (a cloud node type writes it)
# or when one of its addresses is in WA_GATEWAY_IPS (space-separated, or "all"). Other
# nodes only host actors.
#
# Configuration and secrets come from the environment file (default ~/wa-support.env,
# copied by `ray up` from ./wa-support.env): RAY_AUTH_MODE, RAY_AUTH_TOKEN, DATABASE_URL,
# REDIS_URL, WHATSAPP_*, OPENROUTER_API_KEY, JWT_SECRET, ... Nothing secret is written here.
#
# A running gateway is stopped first with SIGTERM, which drains it (webhooks answer 503,
# Meta retries; messages in hand finish within SHUTDOWN_DRAIN_SECONDS), so re-running
# `ray up` after an upgrade restarts each gateway without losing a message.
#
# `start_gateway.sh stop` only drains and stops this node's gateway: the start commands
# run it before `ray stop`, because a gateway whose Ray goes away cannot drain.
# WA_DRY_RUN=1 prints what would run instead of running it.
set -euo pipefail
ACTION="${1:-start}"

ENV_FILE="${WA_ENV_FILE:-$HOME/wa-support.env}"
VENV="${WA_VENV:-$HOME/wa-support-venv}"
PID_FILE="${WA_PID_FILE:-$HOME/wa-support-gateway.pid}"
LOG_FILE="${WA_LOG_FILE:-$HOME/wa-support-gateway.log}"
MARKER="${WA_GATEWAY_MARKER:-$HOME/.wa-support-gateway}"

if [ -f "$ENV_FILE" ]; then
  set -a
  # shellcheck disable=SC1090
  . "$ENV_FILE"
  set +a
fi

stop_gateway() {
  [ -f "$PID_FILE" ] || return 0
  local old
  old="$(cat "$PID_FILE")"
  if kill -0 "$old" 2>/dev/null; then
    kill -TERM "$old"
    # The drain takes SHUTDOWN_DRAIN_SECONDS at most, then a few seconds to close.
    local drain="${SHUTDOWN_DRAIN_SECONDS:-20}"
    local deadline=$(( $(date +%s) + ${drain%.*} + 15 ))
    while kill -0 "$old" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 1; done
    if kill -0 "$old" 2>/dev/null; then kill -KILL "$old"; fi
  fi
  rm -f "$PID_FILE"
}

if [ "$ACTION" = "stop" ]; then
  [ "${WA_DRY_RUN:-0}" = "1" ] && { echo "stop"; exit 0; }
  stop_gateway
  exit 0
fi

takes_webhooks() {
  [ -e "$MARKER" ] && return 0
  local wanted="${WA_GATEWAY_IPS:-}"
  [ "$wanted" = "all" ] && return 0
  local ip
  for ip in ${WA_NODE_IPS:-$(hostname -I 2>/dev/null || true)}; do
    case " $wanted " in *" $ip "*) return 0 ;; esac
  done
  return 1
}

if ! takes_webhooks; then
  echo "wa-support: this node hosts actors only (not in WA_GATEWAY_IPS, no $MARKER)"
  exit 0
fi

# Ray's head as the ray_cluster.yaml commands export it; the GCS port of `ray start --head`.
export RAY_ADDRESS="${RAY_ADDRESS:-${RAY_HEAD_IP:?RAY_HEAD_IP or RAY_ADDRESS must be set}:6379}"
export RAY_AUTH_MODE="${RAY_AUTH_MODE:-token}"
export HOST="${HOST:-0.0.0.0}"
export APP_ENV="${APP_ENV:-production}"
WORKERS="${GATEWAY_WORKERS:-1}"
command=("$VENV/bin/wa-support" serve --workers "$WORKERS")

if [ "${WA_DRY_RUN:-0}" = "1" ]; then
  echo "RAY_ADDRESS=$RAY_ADDRESS RAY_AUTH_MODE=$RAY_AUTH_MODE ${command[*]}"
  exit 0
fi

stop_gateway
setsid nohup "${command[@]}" >>"$LOG_FILE" 2>&1 < /dev/null &
echo $! > "$PID_FILE"
echo "wa-support: gateway started (pid $!, RAY_ADDRESS=$RAY_ADDRESS, log $LOG_FILE)"
